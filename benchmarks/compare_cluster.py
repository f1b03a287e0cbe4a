"""Side by side on a Ray cluster (issue 15, parts 1-3 and 6): the Ray paths beside their peers,
in one run, as ratios — the second half of ``make bench-compare``.

    python -m benchmarks.compare_cluster [--cycles 5] [--seconds 8] [--rounds 3]
                                         [--only engine|throughput] [--write-docs]

One local cluster (2 CPUs) with Linqra's actors and its gateway on Serve behind the HAProxy
ingress, as ``linqra up`` starts them, and beside it on the same Serve instance a bare
FastAPI no-op deployment. Measures, interleaved where they are sequential:

ray_chain   20 sequential ``noop`` steps pinned to ``executor: task`` (a Ray task each), run by
            the runner actor (``run_definition``, its round trip included), against B1's raw
            chain of 20 Ray tasks each given the previous ObjectRef.
one_step    ``POST /v1/workflows/{id}/execute?wait=true`` of a one-step ``noop`` workflow, one
            sequential client, against ``GET`` of the bare Serve no-op behind the same ingress.
fanout      100 (and 1,000) parallel ``http`` steps each answered after 200 ms by a local
            server, through ``execute?wait=true``, against the slowest call (200 ms) and the same
            calls sent at once by one asyncio client; the runner's and I/O actors' RSS.
throughput  ``wrk`` (16 connections) on a team-scoped read (``GET /v1/workflows/{id}``) through
            Serve, against the bare Serve no-op behind the same ingress (same logging config as
            the gateway: no access log), a FastAPI no-op under plain uvicorn, and the same read
            from the same app under plain uvicorn (no Serve); ``--rounds`` interleaved rounds,
            each ratio the median of the rounds' own ratios.

``--only throughput`` measures the gateway alone, ``--only engine`` everything else. Results are printed, written to
benchmarks/results/compare_cluster.json (``--only``: compare_cluster_<part>.json) and, with
``--write-docs`` (whole runs only), as the table between the markers of docs/benchmarks.md's
"Side by side".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import ray
from ray import serve

from actors.cluster import start_cluster
from benchmarks._servers import quotes_server, script_server
from benchmarks._support import (
    BENCH_TEAM,
    bench_settings,
    free_port,
    init_local_ray,
    publish,
    stamp,
    wrk,
)
from deployments.gateway import build_app
from deployments.serve_config import APP_NAME, apply_ingress_env, gateway_options, logging_config
from linqra.config import ServiceConfig

RESULTS = Path(__file__).resolve().parent / "results" / "compare_cluster.json"
BEGIN = "<!-- compare-cluster: written by python -m benchmarks.compare_cluster -->"
END = "<!-- end of compare-cluster -->"
TIMES = "\u00d7"
UVICORN_APP = """
import sys, uvicorn
from fastapi import FastAPI
if sys.argv[1] == "noop":
    app = FastAPI()
    @app.get("/noop")
    async def noop(): return {"ok": True}
else:
    from deployments.app import create_app
    from linqra.config import Settings
    app = create_app(settings=Settings.model_validate_json(sys.argv[1]))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def _bare_serve() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    # the gateway's logging config (no access log): bare Serve, not Serve plus a log line
    @serve.deployment(max_ongoing_requests=100, logging_config=logging_config())
    @serve.ingress(app)
    class Bare:
        @app.get("/noop")
        async def noop(self) -> dict[str, bool]:
            return {"ok": True}

    return Bare.bind()


@ray.remote
def _noop(x: Any = None) -> Any:
    return x


def _raw_chain() -> float:
    t0 = time.perf_counter()
    ref = _noop.remote(0)
    for _ in range(19):
        ref = _noop.remote(ref)
    ray.get(ref)
    return time.perf_counter() - t0


def _interleave(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Medians of ``rounds`` turns (each variant once per turn, after one warm-up turn)."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    for turn in range(rounds + 1):
        for name, fn in variants.items():
            elapsed = fn()
            if turn:
                times[name].append(elapsed)
    return {k: statistics.median(v) for k, v in times.items()}


def _uvicorn(what: str) -> Any:
    """A FastAPI no-op (``noop``) or our app over the settings JSON ``what``, under uvicorn."""
    return script_server(["-c", UVICORN_APP, what], "/noop" if what == "noop" else "/healthz")


def _rss_mb(titles: tuple[str, ...]) -> float:
    ps = subprocess.run(["ps", "-eo", "rss=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 1) for line in ps.splitlines() if line.strip()]
    return round(sum(int(r[0]) for r in rows if any(t in r[1] for t in titles)) / 1024, 1)


def measure(
    cycles: int, seconds: float, rounds: int = 3, only: str | None = None
) -> dict[str, Any]:
    if only != "engine" and shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk (make bench-compare does)")
    apply_ingress_env()
    servers = ExitStack()
    quotes_url = servers.enter_context(quotes_server())
    services = {"quotes-service": ServiceConfig(urls=[quotes_url])}
    settings = bench_settings(Path(tempfile.mkdtemp(prefix="linqra-cmp-")), services)
    # the rate limiter runs on every request as in production, but its team limit (6,000 a
    # minute by default) must not be what wrk measures
    limits = settings.rate_limits.model_copy(update={"team": "100000000/minute"})
    settings = settings.model_copy(update={"rate_limits": limits})
    init_local_ray()  # a cluster of its own even when another one runs on this machine
    try:
        port = free_port()
        serve.start(
            http_options={"host": "127.0.0.1", "port": port}, logging_config=logging_config()
        )
        serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
        serve.run(_bare_serve(), name="bare", route_prefix="/bare")
        base = f"http://127.0.0.1:{port}"
        http = httpx.Client(base_url=base, headers={"X-Team-Id": BENCH_TEAM}, timeout=120)
        runner = start_cluster(settings).runner
        out: dict[str, Any] = {}

        def workflow(steps: list[dict[str, Any]], mode: str = "sequential") -> str:
            body = {"name": f"cmp-{len(steps)}", "mode": mode, "steps": steps}
            response = http.post("/v1/workflows", json=body)
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

        def execute(wf: str) -> dict[str, Any]:
            response = http.post(f"/v1/workflows/{wf}/execute?wait=true", json={})
            assert response.status_code == 200, response.text
            record: dict[str, Any] = response.json()
            assert record["status"] == "COMPLETED", record.get("error")
            return record

        one = workflow([{"step": 1, "target": "noop", "params": {"a": 1}}])
        if only != "throughput":
            out.update(_engine_parts(cycles, http, runner, workflow, execute, one, quotes_url))
        if only != "engine":
            out["throughput"] = _throughput(f"{base}/v1/workflows/{one}", f"{base}/bare/noop",
                                            settings, seconds, rounds)  # fmt: skip
        out["gateway_options"] = {
            k: v for k, v in gateway_options().items() if k != "logging_config"
        }
        serve.shutdown()
        return out
    finally:
        ray.shutdown()
        servers.close()


def _engine_parts(
    cycles: int,
    http: httpx.Client,
    runner: Any,
    workflow: Callable[..., str],
    execute: Callable[[str], dict[str, Any]],
    one: str,
    quotes_url: str,
) -> dict[str, Any]:
    """ray_chain, one_step and fanout (see the module docstring)."""
    out: dict[str, Any] = {}

    def timed(fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    # -- ray_chain: Ray-task steps against the raw chain ----------------------------------
    chain = {"steps": [
        {"step": i, "target": "noop", "executor": "task", "params": {"i": i}}
        for i in range(1, 21)
    ]}  # fmt: skip

    def engine_chain() -> None:
        record = ray.get(runner.run_definition.remote(BENCH_TEAM, chain, {}, timeout=120))
        assert record["status"] == "COMPLETED", record.get("error")

    medians = _interleave({"raw": _raw_chain, "engine": lambda: timed(engine_chain)}, cycles * 6)
    out["ray_chain_ms"] = {k: round(v * 1000, 2) for k, v in medians.items()}
    out["ray_chain_ratio"] = round(medians["engine"] / medians["raw"], 2)

    # -- one_step: the whole HTTP execution against the bare Serve no-op -------------------
    medians = _interleave(
        {
            "execute_wait": lambda: timed(lambda: execute(one)),
            "bare_serve": lambda: timed(lambda: http.get("/bare/noop").raise_for_status()),
        },
        cycles * 20,
    )
    out["one_step_p50_ms"] = {k: round(v * 1000, 2) for k, v in medians.items()}

    # -- fanout: 100 and 1,000 parallel 200 ms steps ---------------------------------------
    async def direct(n: int) -> float:
        limits = httpx.Limits(max_connections=n)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            t0 = time.perf_counter()
            await asyncio.gather(*(client.get(f"{quotes_url}/api/sleep?ms=200") for _ in range(n)))
            return time.perf_counter() - t0

    wait = {"target": "wait", "params": {"seconds": 0.2}}
    fetch = {"target": "http", "action": "fetch", "intent": f"{quotes_url}/api/sleep",
             "params": {"ms": 200}}  # fmt: skip
    titles = ("RunnerActor", "IOStepWorker")
    for name, n, step, peer in (
        ("fanout_wait_100", 100, wait, None),
        ("fanout_wait_1000", 1000, wait, None),
        ("fanout_http_100", 100, fetch, direct),
    ):
        wf = workflow([{"step": i, **step} for i in range(1, n + 1)], mode="dag")
        rss_before = _rss_mb(titles)
        walls, inner, peers = [], [], []
        for turn in range(cycles + 1):
            t0 = time.perf_counter()
            record = execute(wf)
            wall = time.perf_counter() - t0
            if turn:
                walls.append(wall)
                inner.append(record["duration_ms"] / 1000)
                if peer is not None:
                    peers.append(asyncio.run(peer(n)))
        out[name] = {
            "wall_over_200ms": round(statistics.median(walls) / 0.2, 2),
            "engine_record_over_200ms": round(statistics.median(inner) / 0.2, 2),
            "rss_runner_and_io_actors_mb": {"before": rss_before, "after": _rss_mb(titles)},
        }
        if peers:
            out[name]["one_asyncio_client_over_200ms"] = round(statistics.median(peers) / 0.2, 2)

    return out


def _throughput(
    read_url: str, bare_url: str, settings: Any, seconds: float, rounds: int
) -> dict[str, Any]:
    """wrk on the read through Serve, the bare Serve no-op, a uvicorn no-op and the read under
    uvicorn, in ``rounds`` interleaved rounds: each target's medians, and each ratio the median
    of the rounds' own ratios (a round's targets see the same minute of a shared machine)."""
    path = read_url.split("/", 3)[3]
    runs: dict[str, list[dict[str, float]]] = {}
    with _uvicorn("noop") as noop_url, _uvicorn(settings.model_dump_json()) as app_url:
        targets = {
            "serve_read": (read_url, True),
            "serve_bare_noop": (bare_url, False),
            "uvicorn_noop": (f"{noop_url}/noop", False),
            "uvicorn_read": (f"{app_url}/{path}", True),
        }
        for url, team in targets.values():
            wrk(url, 2, 16, team)  # warm-up
        loads = [os.getloadavg()[0]]
        for _ in range(rounds):
            for name, (url, team) in targets.items():
                runs.setdefault(name, []).append(wrk(url, seconds, 16, team))
            loads.append(os.getloadavg()[0])
    rates: dict[str, Any] = {
        name: {
            "rps": statistics.median(r["rps"] for r in got),
            "p50_ms": statistics.median(r["p50_ms"] for r in got),
            "rounds": [r["rps"] for r in got],
        }
        for name, got in runs.items()
    }

    def ratio(a: str, b: str) -> float:
        pairs = zip(runs[a], runs[b], strict=True)
        return round(statistics.median(x["rps"] / y["rps"] for x, y in pairs), 2)

    rates["ratios"] = {
        "read_over_bare_serve": ratio("serve_read", "serve_bare_noop"),
        "uvicorn_read_over_uvicorn_noop": ratio("uvicorn_read", "uvicorn_noop"),
        "serve_read_over_uvicorn_read": ratio("serve_read", "uvicorn_read"),
        "bare_serve_over_uvicorn_noop": ratio("serve_bare_noop", "uvicorn_noop"),
    }
    rates["load_1min"] = [round(x, 2) for x in loads]
    return rates


def _table(r: dict[str, Any]) -> str:
    rows = [
        BEGIN,
        "",
        f"{r['when']}, commit {r['commit']}, load {r['load']}: `python -m benchmarks.compare_cluster`"
        " (a local Ray cluster, 2 CPUs; Serve behind the HAProxy ingress; medians).",
        "",
        "| measure | Linqra | peer | ratio |",
        "| --- | --- | --- | --- |",
        *_engine_rows(r),
        *_throughput_rows(r),
        "",
        END,
    ]  # fmt: skip
    return "\n".join(rows)


def _engine_rows(r: dict[str, Any]) -> list[str]:
    one, rc = r["one_step_p50_ms"], r["ray_chain_ms"]
    w1, w2, h1 = r["fanout_wait_100"], r["fanout_wait_1000"], r["fanout_http_100"]
    return [
        f"| 20 Ray-task `noop` steps through the runner actor | {rc['engine']} ms | raw chain of 20 Ray tasks {rc['raw']} ms | **{r['ray_chain_ratio']}{TIMES}** |",
        f"| one-step workflow, `execute?wait=true`, p50 | {one['execute_wait']} ms | bare Serve no-op {one['bare_serve']} ms | {round(one['execute_wait'] / one['bare_serve'], 2)}{TIMES} |",
        f"| 100 parallel 200 ms `wait` steps (I/O pool), `execute?wait=true`, wall / 200 ms | **{w1['wall_over_200ms']}** (the engine's record {w1['engine_record_over_200ms']}) | the slowest call | {w1['wall_over_200ms']}{TIMES} |",
        f"| 1,000 of them | **{w2['wall_over_200ms']}** (record {w2['engine_record_over_200ms']}); runner + I/O actors {w2['rss_runner_and_io_actors_mb']['before']} → {w2['rss_runner_and_io_actors_mb']['after']} MB RSS | the slowest call | {w2['wall_over_200ms']}{TIMES} |",
        f"| 100 parallel `http` steps to a server answering after 200 ms | {h1['wall_over_200ms']} (record {h1['engine_record_over_200ms']}) | one asyncio client sending the same 100 calls {h1['one_asyncio_client_over_200ms']} | {round(h1['wall_over_200ms'] / h1['one_asyncio_client_over_200ms'], 2)}{TIMES} |",
    ]  # fmt: skip


def _throughput_rows(r: dict[str, Any]) -> list[str]:
    t = r["throughput"]
    q = t["ratios"]
    options = r.get("gateway_options", {})
    scaling = options.get("autoscaling_config") or {}
    replicas = (
        f"{scaling.get('min_replicas')}-{scaling.get('max_replicas')}, autoscaling"
        if scaling
        else str(options.get("num_replicas", 1))
    )
    return [
        f"| team-scoped read under wrk (16 connections), req/s (gateway replicas {replicas}) | {t['serve_read']['rps']:.0f} (p50 {t['serve_read']['p50_ms']} ms) | bare Serve no-op {t['serve_bare_noop']['rps']:.0f} (one replica, no access log) | **{q['read_over_bare_serve']}{TIMES}** |",
        f"| the same read, our app under plain uvicorn | {t['uvicorn_read']['rps']:.0f} | uvicorn no-op {t['uvicorn_noop']['rps']:.0f} | {q['uvicorn_read_over_uvicorn_noop']}{TIMES} |",
        f"| what Serve costs our read: through Serve / under uvicorn | {t['serve_read']['rps']:.0f} | {t['uvicorn_read']['rps']:.0f} | {q['serve_read_over_uvicorn_read']}{TIMES} |",
        f"| what Serve itself costs: bare Serve no-op / uvicorn no-op | {t['serve_bare_noop']['rps']:.0f} | {t['uvicorn_noop']['rps']:.0f} | {q['bare_serve_over_uvicorn_noop']}{TIMES} |",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_cluster")
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved wrk rounds")
    parser.add_argument(
        "--only", choices=["engine", "throughput"], help="the engine's rows or the gateway's alone"
    )
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.only and args.write_docs:
        parser.error("--write-docs writes the whole table: run without --only")
    result = {**stamp(), **measure(args.cycles, args.seconds, args.rounds, args.only)}
    if args.only:
        out = RESULTS.with_name(f"compare_cluster_{args.only}.json")
        publish(result, out, (BEGIN, END), "", docs=False)
        rows = _throughput_rows(result) if args.only == "throughput" else _engine_rows(result)
        print("\n".join(rows))
    else:
        publish(result, RESULTS, (BEGIN, END), _table(result), args.write_docs)


if __name__ == "__main__":
    main()
