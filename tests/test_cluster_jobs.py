"""docs/operations.md, "One machine, several nodes", run for real: ``configs/cluster-local.yaml``
starts a head and fake worker nodes (Ray's fake multi-node provider and autoscaler), ``serve
deploy configs/serve.yaml`` deploys Linqra on it, and a Ray job runs ``linqra run … --ray`` with
its driver on a worker node.

What differs from a reader's terminal, because other Ray clusters may run on this machine (the
session's, another test's): free ports instead of 6380, 8265, 8000 and the dashboard agent's
52365; a Ray temp dir and a Linqra data dir of the test's own; a token of its own for Ray's token
authentication; and the cluster is stopped by killing the processes it started, never with
``ray stop`` (which stops every Ray process on the machine).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.servers import free_port, wait_port

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "CO_API_KEY")


@dataclass(frozen=True)
class LocalCluster:
    dashboard: str  # http://127.0.0.1:PORT: the Jobs API and Serve's REST API
    gateway: str
    env: dict[str, str]  # a client's environment: the token, no other cluster's address
    token: str
    log: Path

    def api(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        answer = httpx.get(f"{self.dashboard}{path}", headers=headers, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / args[0]), *args[1:]], cwd=ROOT, env=self.env, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip


def _wait(what: str, check: Callable[[], Any], timeout: float, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (httpx.HTTPError, OSError, ValueError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise TimeoutError(f"{what} not after {timeout:.0f} s\n{tail}")
        time.sleep(0.5)


def _client_env(tmp: Path, token: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RAY_", "LINQRA_")) and k not in PROVIDER_KEYS
    }
    return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_TMPDIR": str(tmp)}


def _stop(session: int, tmp: Path) -> None:
    """Every process of the cluster: its session (the head's and the fake nodes' processes),
    then any process still naming the test's temp dir (Ray's workers)."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(session, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(session, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if str(tmp).encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[LocalCluster]:
    tmp = Path(tempfile.mkdtemp(prefix="lqc-", dir="/tmp"))  # short: socket paths ≤ 107
    gcs, dashboard, agent, client, http, demo_port = (free_port() for _ in range(6))
    config = yaml.safe_load((ROOT / "configs" / "cluster-local.yaml").read_text())
    config["provider"]["gcs_address"] = f"127.0.0.1:{gcs}"
    (tmp / "cluster-local.yaml").write_text(yaml.safe_dump(config))
    token = secrets.token_hex(32)
    env = _client_env(tmp, token)
    cluster_env = {
        **env,
        "RAY_FAKE_CLUSTER": "1",
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
        "LINQRA_DATA_DIR": str(tmp / "data"),
        "LINQRA_SERVICES": json.dumps(
            {"quotes-service": {"urls": [f"http://127.0.0.1:{demo_port}"], "timeout_seconds": 10}}
        ),
    }
    demo = subprocess.Popen(
        [str(BIN / "python"), "-m", "deployments.demo", "--port", str(demo_port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    log = tmp / "head.log"
    # the docs' command, on free ports
    start = [
        str(BIN / "ray"), "start", "--head", f"--port={gcs}", "--node-ip-address=127.0.0.1",
        "--num-cpus=0", f"--autoscaling-config={tmp / 'cluster-local.yaml'}",
        f"--dashboard-port={dashboard}", f"--dashboard-agent-listen-port={agent}",
        f"--ray-client-server-port={client}", "--block",
    ]  # fmt: skip
    with log.open("wb") as out:
        head = subprocess.Popen(
            start, cwd=ROOT, env=cluster_env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    cluster = LocalCluster(
        f"http://127.0.0.1:{dashboard}", f"http://127.0.0.1:{http}", env, token, log
    )
    try:
        wait_port(demo_port, proc=demo)
        serve_config = yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())
        serve_config["http_options"]["port"] = http
        (tmp / "serve.yaml").write_text(yaml.safe_dump(serve_config))
        yield cluster
    finally:
        _stop(head.pid, tmp)
        demo.terminate()
        demo.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def _alive_nodes(cluster: LocalCluster) -> list[dict[str, Any]]:
    nodes = cluster.api("/api/v0/nodes?limit=100")["data"]["result"]["result"]
    return [n for n in nodes if n["state"] == "ALIVE"]


@pytest.mark.ray
def test_the_local_config_starts_nodes_serves_linqra_and_runs_a_job(
    local_cluster: LocalCluster,
) -> None:
    cluster = local_cluster
    # the autoscaler brings up the config's min_workers: two cpu_worker nodes beside the head
    nodes = _wait("a head and two worker nodes", lambda: len(_alive_nodes(cluster)) >= 3 and
                  _alive_nodes(cluster), 240, cluster.log)  # fmt: skip
    head = next(n for n in nodes if n["is_head_node"])
    workers = [n for n in nodes if not n["is_head_node"]]
    assert head["resources_total"].get("CPU", 0) == 0
    assert {w["resources_total"]["CPU"] for w in workers} == {1.0}

    serve_yaml = str(Path(cluster.log).parent / "serve.yaml")
    deployed = cluster.run("serve", "deploy", serve_yaml, "--address", cluster.dashboard)
    assert deployed.returncode == 0, deployed.stderr
    _wait(
        "the gateway's /healthz",
        lambda: httpx.get(f"{cluster.gateway}/healthz", timeout=10).status_code == 200,
        600,
        cluster.log,
    )
    status = cluster.run("serve", "status", "--address", cluster.dashboard)
    assert "RUNNING" in status.stdout, status.stdout

    # a driver as a Ray job; one CPU for its entrypoint puts it on a worker node (the head has none)
    job = cluster.run(
        "ray", "job", "submit", "--address", cluster.dashboard, "--submission-id", "linqra-run",
        "--entrypoint-num-cpus", "1", "--", str(BIN / "linqra"), "run",
        "configs/examples/parallel_workflow.json", "--ray", "--team", "acme", "--json",
        timeout=600,
    )  # fmt: skip
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert '"status": "COMPLETED"' in job.stdout or '"status":"COMPLETED"' in job.stdout
    details = cluster.api("/api/jobs/linqra-run")
    assert details["status"] == "SUCCEEDED"
    assert details["driver_node_id"] in {w["node_id"] for w in workers}
