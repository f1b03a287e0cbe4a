"""``linqra status``'s live summary (deployments/status_live.py, deployments/status_cli.py), read
from real metrics endpoints:

* ``prometheus_client``'s own registry and HTTP server — Linqra's adapter for a process without
  Ray, recording through the metrics port — parsed and summarised: running executions per
  process, the interval's increases, error rates and rates, a counter that restarted, queues,
  agents, spend; ``--watch`` as the installed command runs it, stopped by Ctrl-C;
* a gateway without Ray whose ``metrics.port`` the CLI finds in the config, with the team's spend
  today from ``/v1/analytics/costs`` next to the cost counter;
* the session's Ray cluster: executions completed and failed, model calls and cost between two
  scrapes of the node's metrics export, a running execution counted then not, the supervisor's
  queue and agent samples; the installed command joining the cluster by ``--address``;
* no endpoint: one line on stderr naming what to start or set, an exit status, no traceback.

Figures are awaited with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from deployments.cli import main
from deployments.status_live import NoEndpoint, discovery_targets, money, render, scrape, summarize
from linqra.config import MetricsSettings, Settings
from linqra.llm.budgets import to_nanos
from linqra.llm.usage import USAGE
from linqra.metrics.catalogue import (
    AGENT_ACTORS,
    EXECUTIONS,
    EXECUTIONS_STARTED,
    LLM_CALLS,
    LLM_COST,
    QUEUE_DEPTH,
    QUEUE_OLDEST_AGE,
)
from linqra.metrics.prometheus import PrometheusMetrics
from linqra.system import System
from linqra_client import Linqra
from tests.support.http import until
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
LINQRA = ROOT / ".venv" / "bin" / "linqra"
TEAM = "team-status"
LLM_STEP = {
    "step": 2, "target": "openai", "action": "generate",
    "payload": [{"role": "user", "content": "count to three"}], "llmConfig": {"model": "gpt-4o"},
}  # fmt: skip
GOOD = [{"step": 1, "target": "transform", "params": {"expression": "`1`", "input": {}}}, LLM_STEP]
BAD = [{"step": 1, "target": "quotes-service", "action": "fetch", "intent": "/status/404"}]
SLOW = [{"step": 1, "target": "wait", "params": {"seconds": 30}}]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something true (returned), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"waited {timeout:g}s for {what}; last: {got!r}"
        time.sleep(0.1)


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINQRA_", "RAY_"))}
    return {**env, "LINQRA_DATA_DIR": str(tmp_path / "data"), **extra}


@pytest.fixture(autouse=True)
def _own_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No gateway, credentials or Ray cluster from the environment; a data dir of its own."""
    for name in ("LINQRA_URL", "LINQRA_TEAM", "LINQRA_API_KEY", "LINQRA_TOKEN", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LINQRA_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def exporter() -> Iterator[Callable[[], PrometheusMetrics]]:
    """``exporter()``: a process's metrics as ``prometheus_client`` serves them (Linqra's
    adapter without Ray) on a free loopback port; closed at the end."""
    made: list[PrometheusMetrics] = []

    def make(port: int = 0) -> PrometheusMetrics:
        metrics = PrometheusMetrics(team_labels=True)
        metrics.strict = True
        metrics.serve("127.0.0.1", port)
        made.append(metrics)
        return metrics

    yield make
    for metrics in made:
        metrics.close()


# -- prometheus_client's registry and server --------------------------------------------------
def runs(metrics: PrometheusMetrics, started: int, **ended: int) -> None:
    for _ in range(started):
        metrics.add(EXECUTIONS_STARTED, team=TEAM, reason="submitted")
    for status, n in ended.items():
        metrics.add(EXECUTIONS, n, team=TEAM, status=status)


def calls(metrics: PrometheusMetrics, nanos: int, **by_status: int) -> None:
    for status, n in by_status.items():
        labels = {"provider": "openai", "model": "gpt-4o", "operation": "chat", "status": status}
        metrics.add(LLM_CALLS, n, team=TEAM, **labels)
    metrics.add(LLM_COST, nanos, team=TEAM, provider="openai", model="gpt-4o", currency="USD")


def test_two_scrapes_of_prometheus_client_endpoints_are_summarised(
    exporter: Callable[..., PrometheusMetrics],
) -> None:
    a, b = exporter(), exporter()  # two processes: a runner each
    assert a.url and b.url
    runs(a, 5, COMPLETED=3)  # 2 running in a
    runs(b, 2, COMPLETED=2, CANCELLED=1)  # one cancelled before it started: b counts 0, not -1
    calls(a, 1_500, ok=4)
    a.set(QUEUE_DEPTH, 7, queue="async_steps")
    a.set(QUEUE_OLDEST_AGE, 95.5, queue="async_steps")
    a.set(QUEUE_DEPTH, 0, queue="task_executions")
    a.set(QUEUE_OLDEST_AGE, 0, queue="task_executions")
    a.set(AGENT_ACTORS, 3)
    first = scrape([a.url, b.url])
    assert first.answered() == [a.url, b.url]

    one = summarize(first)
    assert one["executions"]["running_estimate"] == 2
    assert one["executions"]["since_start"] == {"CANCELLED": 1, "COMPLETED": 5}
    assert one["queues"] == {
        "async_steps": {"depth": 7, "oldest_age_seconds": 95.5},
        "task_executions": {"depth": 0, "oldest_age_seconds": 0.0},
    }
    assert one["agent_actors"] == 3 and one["interval_seconds"] is None
    assert "(rates: at the next refresh" in "\n".join(render(one, "test"))

    runs(a, 0, COMPLETED=1, FAILED=1)  # the two running in a end: one fails
    runs(b, 3, TIMEOUT=1)
    calls(a, 2_000_000_250, ok=3, error=1)  # 2.00000025 USD
    calls(b, 5, cancelled=1)  # b's first model call: a series new since the first scrape
    second = scrape([a.url, b.url])
    two = summarize(second, first)
    seconds = round(second.at - first.at, 3)
    assert two["interval_seconds"] == seconds > 0
    assert two["executions"]["running_estimate"] == 1  # a: 5 started, 5 ended; b: 5 and 4
    ended = two["executions"]["interval"]
    assert ended["by_status"] == {"COMPLETED": 1, "FAILED": 1, "TIMEOUT": 1}
    assert (ended["total"], ended["errors"], ended["error_rate"]) == (3, 2, round(2 / 3, 4))
    assert ended["per_second"] == round(3 / seconds, 3)
    model = two["model_calls"]["interval"]
    assert model["by_status"] == {"cancelled": 1, "error": 1, "ok": 3}
    assert (model["total"], model["errors"], model["error_rate"]) == (5, 1, 0.2)
    assert two["spend"]["interval"] == {"USD": {"nanos": 2_000_000_255, "amount": "2.000000255"}}
    assert two["spend"]["since_start"]["USD"]["nanos"] == 2_000_001_755

    # b restarts: its counters start again from 0; one below what the last scrape saw is a
    # restart (as Prometheus's increase() reads it), its new value the increase
    port = int(b.url.rsplit(":", 1)[1].split("/")[0])
    b.close()
    b2 = exporter(port)
    runs(b2, 1, COMPLETED=1)
    third = scrape([a.url, b.url])
    three = summarize(third, second)
    assert three["executions"]["interval"]["by_status"] == {"COMPLETED": 1}
    assert three["executions"]["running_estimate"] == 0

    text = "\n".join(render(two, "the test's endpoints"))
    at = two["at"][:19] + "Z"
    assert f"live:       2 of 2 metrics endpoint(s) of the test's endpoints, read {at}" in text
    assert (
        f"last {seconds:g} s: 3 ended (" in text
        and "2 failed or timed out: error rate 66.7%" in text
    )
    assert "5 call(s)" in text and "1 error(s): error rate 20.0%" in text
    assert (
        "  queues      async_steps 7 waiting (oldest 96 s), task_executions 0 waiting (oldest 0 s)"
        in text
    )
    assert "  agents      3 agent actor(s) live" in text
    assert "USD 2.000001755 since the processes started, USD 2.000000255 in the last" in text


def test_an_endpoint_that_does_not_answer_is_named(
    exporter: Callable[..., PrometheusMetrics],
) -> None:
    a = exporter()
    runs(a, 1, COMPLETED=1)
    gone = f"http://127.0.0.1:{free_port()}/metrics"
    first = scrape([str(a.url), gone])
    assert first.answered() == [a.url] and first.errors == {gone: "ConnectError"}
    lines = render(summarize(first), "--metrics")
    assert lines[0].startswith("live:       1 of 2 metrics endpoint(s) of --metrics")
    assert lines[1] == f"  {gone} does not answer (ConnectError)"
    assert money(0) == "0.00" and money(1) == "0.000000001" and money(12_500_000_000) == "12.50"


def test_watch_refreshes_until_ctrl_c(
    exporter: Callable[..., PrometheusMetrics], tmp_path: Path
) -> None:
    """The installed command, ``--watch --json``: a snapshot a line, the rates over the time
    since the previous one; Ctrl-C ends it with status 0 and no traceback."""
    a = exporter()
    runs(a, 1, COMPLETED=1)
    dead = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [str(LINQRA), "status", "--watch", "0.5", "--json", "--metrics", str(a.url), "--url", dead],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=clean_env(tmp_path),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["live"]["interval_seconds"] is None
        assert first["live"]["executions"]["since_start"] == {"COMPLETED": 1}
        assert first["error"].startswith(f"no Linqra gateway answers at {dead}")
        runs(a, 1, FAILED=1)

        def failed_frame() -> dict[str, Any] | None:
            frame = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
            interval = frame["live"]["executions"]["interval"]
            return frame if interval["by_status"] == {"FAILED": 1} else None

        frame = wait_for(failed_frame, "a frame with the failed execution", 20)
        assert frame["live"]["executions"]["interval"]["error_rate"] == 1.0
        assert 0.3 < frame["live"]["interval_seconds"] < 5
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Traceback" not in err, err


# -- a gateway without Ray: metrics.port ----------------------------------------------------------
@pytest.fixture
def settings(llm_settings: Settings) -> Settings:
    """The in-process gateway serves its metrics on a port of its own (metrics.port)."""
    return llm_settings.model_copy(update={"metrics": MetricsSettings(port=free_port())})


def test_status_of_a_gateway_without_ray_reads_metrics_port(
    live_url: str,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Linqra(live_url, team=TEAM) as api:
        good = api.executions.start(api.workflows.create(name="good", steps=GOOD).id)
        bad = api.executions.start(api.workflows.create(name="bad", steps=BAD).id)
        for run, status in ((good, "COMPLETED"), (bad, "FAILED")):
            until(lambda: api.executions.get(run.id).status == status, 30)  # noqa: B023
    # the CLI reads the same config as the gateway: here, its metrics.port from the environment
    monkeypatch.setenv("LINQRA_METRICS__PORT", str(settings.metrics.port))
    capsys.readouterr()
    args = ["status", "--url", live_url, "--team", TEAM, "--interval", "0.2"]

    def report() -> dict[str, Any]:
        assert main([*args, "--json"]) == 0
        return dict(json.loads(capsys.readouterr().out))

    got = wait_for(
        lambda: (r := report())["live"]["model_calls"]["since_start"] == {"ok": 1} and r,
        "the model call in the gateway's metrics",
    )
    live = got["live"]
    assert live["source"] == "metrics.port of the config"
    assert live["endpoints"]["urls"] == [f"http://127.0.0.1:{settings.metrics.port}/metrics"]
    assert live["executions"]["since_start"] == {"COMPLETED": 1, "FAILED": 1}
    assert live["executions"]["running_estimate"] == 0
    assert live["queues"] == {} and live["agent_actors"] is None  # sampled on Ray only
    nanos = live["spend"]["since_start"]["USD"]["nanos"]
    today = got["spend_today"]
    assert today["calls"] == 1 and today["unpriced_calls"] == 0
    assert to_nanos(Decimal(today["by_currency"]["USD"])) == nanos > 0  # one call: exactly

    assert main(args) == 0
    out = capsys.readouterr().out
    assert (
        f"spend:      today USD {today['by_currency']['USD']} for team {TEAM} (1 model call(s)"
        in out
    )
    assert "live:       1 of 1 metrics endpoint(s) of metrics.port of the config" in out
    assert "  executions  0 running now (started - ended per runner process, all teams)" in out
    assert "  queues      not reported (the supervisor actor samples them, on Ray)" in out
    assert f"  spend       USD {money(nanos)} since the processes started" in out


# -- no endpoint --------------------------------------------------------------------------
def test_no_endpoint_is_one_line_naming_what_to_start(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"

    def status(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["status", "--url", dead, *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    gateway = f"linqra status: no Linqra gateway answers at {dead} — start one with `make run`"
    code, out, err = status("--watch")
    assert (code, out) == (1, "") and err.count("\n") == 1, err
    assert err.startswith(
        "linqra status: no metrics endpoint found: start Linqra with `linqra up` (its cluster is "
        "found by itself), name a cluster with --address or $RAY_ADDRESS, give --metrics URL or "
        "--discovery FILE (Ray's prom_metrics_service_discovery.json), or for a gateway without "
        "Ray set metrics.port ($LINQRA_METRICS__PORT)"
    )
    code, out, err = status("--discovery", str(tmp_path / "nope.json"))
    assert (code, out) == (1, "") and err.startswith(gateway)
    assert err.splitlines()[1] == f"linqra status: no such file: {tmp_path / 'nope.json'} (Ray " \
        "writes it in its session directory and links it from its temp dir, /tmp/ray unless " \
        "moved, while a cluster runs)"  # fmt: skip
    gone = f"{dead}/metrics"
    code, out, err = status("--metrics", gone, "--json")
    assert (code, out) == (1, "") and len(err.splitlines()) == 2
    assert err.splitlines()[1].startswith(
        f"linqra status: no metrics endpoint answers: {gone} (ConnectError) — is the cluster"
    )
    code, _, err = status("--interval", "0")
    assert (
        code == 2
        and err == "linqra status: --interval takes seconds, more than 0 and at most 3600\n"
    )


# -- the session's Ray cluster -------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(ray_cluster: Any, ray_settings: Settings) -> Settings:
    from actors.cluster import start_cluster

    start_cluster(ray_settings)
    return ray_settings


def node_export(ray_cluster: Any) -> str:
    """The session node's metrics export, on loopback (it listens on every address; the tests
    reach nothing but loopback)."""
    import ray

    [node] = [n for n in ray.nodes() if n["Alive"]]  # type: ignore[no-untyped-call]
    return f"http://127.0.0.1:{node['MetricsExportPort']}/metrics"


def on_ray(settings: Settings, work: Callable[[System], Any]) -> Any:
    """``await work(system)`` with a system of this process on the cluster (its runner actor)."""
    from actors.events import open_bus
    from actors.handles import RayLauncher

    async def run() -> Any:
        system = await System.open(settings, launcher=RayLauncher(settings),
                                   events=open_bus(settings), init=True)  # fmt: skip
        try:
            return await work(system)
        finally:
            await system.close()

    return asyncio.run(run())


async def run_all(system: System, steps: list[dict[str, Any]], count: int) -> list[str]:
    definition = system.workflows.validate_definition({"steps": steps})
    ended = []
    for _ in range(count):
        ex = await system.runs.start_execution(TEAM, definition=definition)
        ended.append((await system.runs.wait_execution(TEAM, ex["id"], 60))["status"])
    return ended


def running(url: str) -> int:
    return int(summarize(scrape([url]), team=TEAM)["executions"]["running_estimate"])


@pytest.mark.ray
def test_the_summary_of_the_session_cluster(cluster: Settings, ray_cluster: Any) -> None:
    url = node_export(ray_cluster)
    before = scrape([url])
    assert before.answered() == [url]

    async def work(system: System) -> None:
        assert await run_all(system, GOOD, 2) == ["COMPLETED"] * 2
        assert await run_all(system, BAD, 1) == ["FAILED"]

        def arrived() -> dict[str, Any] | None:  # this test's team: the cluster is shared
            summary = summarize(scrape([url]), before, team=TEAM)
            done = summary["executions"]["interval"]["total"] >= 3
            return summary if done and summary["model_calls"]["interval"]["total"] >= 2 else None

        summary = await asyncio.to_thread(wait_for, arrived, "the runs' metrics in the export")
        ended = summary["executions"]["interval"]
        assert ended["by_status"] == {"COMPLETED": 2, "FAILED": 1}, ended
        assert ended["error_rate"] == round(1 / 3, 4) and ended["per_second"] > 0
        calls = summary["model_calls"]["interval"]
        assert calls["by_status"] == {"ok": 2} and calls["error_rate"] == 0.0
        # the cost counter's increase is the team's usage records' cost, to the nano
        usage = await system.store.find(USAGE, TEAM, {}, limit=1000)
        nanos = sum(to_nanos(Decimal(d["cost"])) for d in usage if d.get("cost"))
        assert summary["spend"]["interval"]["USD"]["nanos"] == nanos > 0

        # a running execution counts in the estimate, and stops counting once cancelled
        base = summary["executions"]["running_estimate"]
        slow = await system.runs.start_execution(
            TEAM, definition=system.workflows.validate_definition({"steps": SLOW})
        )
        await asyncio.to_thread(wait_for, lambda: running(url) == base + 1, "a run counted")
        await system.runs.cancel_execution(TEAM, slow["id"])
        await asyncio.to_thread(wait_for, lambda: running(url) == base, "no longer counted")

    on_ray(cluster, work)
    # the supervisor's samples: both queues, and the agent actors
    sampled = wait_for(
        lambda: (
            (s := summarize(scrape([url])))["agent_actors"] is not None
            and set(s["queues"]) == {"async_steps", "task_executions"}
            and s
        ),
        "the supervisor's samples",
    )
    assert all(q["depth"] >= 0 and q["oldest_age_seconds"] >= 0 for q in sampled["queues"].values())

    session = Path(ray_cluster.address_info["session_dir"])
    port = url.rsplit(":", 1)[1]  # "PORT/metrics"

    def listed() -> bool:  # Ray writes the file every 5 s: the node's export is listed in it
        try:
            targets = discovery_targets(session / "prom_metrics_service_discovery.json")
        except NoEndpoint:
            return False
        return any(t.endswith(f":{port}") for t in targets)

    wait_for(listed, "the node's export in Ray's discovery file")


@pytest.mark.ray
def test_the_installed_command_joins_the_cluster_by_address(
    cluster: Settings, ray_cluster: Any, tmp_path: Path
) -> None:
    """``linqra status --address`` as a user runs it: the cluster's resources and runner, and
    the live summary read from the nodes Ray lists (no gateway here: exit 1, said on stderr)."""
    url = node_export(ray_cluster)
    assert on_ray(cluster, lambda system: run_all(system, GOOD[:1], 1)) == ["COMPLETED"]
    wait_for(
        lambda: summarize(scrape([url]))["executions"]["since_start"].get("COMPLETED"),
        "a completed execution in the node's export",
    )
    dead = f"http://127.0.0.1:{free_port()}"
    # a cluster ray.init() started takes clients with its token (~/.ray/auth_token) only
    env = clean_env(tmp_path, LINQRA_RAY__NAMESPACE=cluster.ray.namespace, RAY_AUTH_MODE="token")
    address = ray_cluster.address_info["gcs_address"]
    done = subprocess.run(
        [str(LINQRA), "status", "--address", address, "--url", dead, "--json", "--interval", "1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )  # fmt: skip
    assert done.returncode == 1 and done.stderr.startswith(
        f"linqra status: no Linqra gateway answers at {dead}"
    ), done.stderr
    assert done.stdout, done.stderr
    report = json.loads(done.stdout)
    assert report["ray"]["address"] == address and report["ray"]["resources"]["CPU"] == 2
    assert "runner" in report["ray"], report["ray"]
    live = report["live"]
    assert live["source"] == f"the Ray cluster at {address}"
    assert live["endpoints"]["answered"] == live["endpoints"]["urls"] != []
    assert live["interval_seconds"] >= 1
    assert live["executions"]["since_start"]["COMPLETED"] >= 1
