"""Benchmarks B1-B3 of the walking skeleton, each against its baseline in the same run.

    python -m benchmarks.run            # all
    python -m benchmarks.run b1 b2      # some

B1  per-step engine overhead: a 20-step sequential workflow of no-op Ray-task steps against a raw
    chain of 20 Ray tasks; and 20 inline ``transform`` steps against the same chain in plain Python.
B2  100 parallel steps each awaiting 200 ms of HTTP I/O: wall time / 200 ms, and Ray worker processes.
B3  ``linqra up`` cold start to a healthy /healthz, seconds (with ``linqra up``'s phases), and the
    first execution after it against a warm one (a 3-step DAG of 600 ms steps).

Results are printed and written to benchmarks/results/latest.json (a measure not run keeps
its earlier figures there, with the date they were taken).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import jmespath

from benchmarks._support import bench_settings, free_port, init_local_ray, wait_steady
from deployments.demo import serve_quotes
from linqra.config import ServiceConfig, Settings

RESULTS = Path(__file__).resolve().parent / "results"


async def _run_workflow(
    runner: Any, team: str, body: dict[str, Any]
) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    record = await runner.run_definition.remote(team, body, {}, timeout=600)
    return time.perf_counter() - t0, record


def b1(settings: Settings, repeats: int = 15) -> dict[str, Any]:
    import ray

    from actors.cluster import start_cluster

    @ray.remote
    def noop(x: Any = None) -> Any:
        return x

    # warm up workers
    ray.get([noop.remote() for _ in range(4)])

    def raw_chain() -> float:
        t0 = time.perf_counter()
        ref = noop.remote(0)
        for _ in range(19):
            ref = noop.remote(ref)
        ray.get(ref)
        return time.perf_counter() - t0

    cluster = start_cluster(settings)
    wait_steady(cluster)
    runner = cluster.runner
    noop_steps = {
        "steps": [
            {"step": i, "target": "noop", "executor": "task", "params": {"i": i}}
            for i in range(1, 21)
        ]
    }
    transform_steps = {
        "steps": [
            {"step": 1, "target": "transform", "params": {"expression": "@", "input": {"a": 0}}},
            *[
                {
                    "step": i,
                    "target": "transform",
                    "params": {"expression": "{a: a}", "input": f"{{{{step{i - 1}.result}}}}"},
                }
                for i in range(2, 21)
            ],
        ]
    }

    def plain_chain() -> float:
        expr = jmespath.compile("{a: a}")
        t0 = time.perf_counter()
        value: Any = {"a": 0}
        for _ in range(20):
            value = expr.search(value)
        return time.perf_counter() - t0

    async def engine_runs(body: dict[str, Any]) -> list[float]:
        times = []
        for _ in range(repeats + 2):
            elapsed, record = await _run_workflow(runner, "bench", body)
            assert record["status"] == "COMPLETED", record.get("error")
            times.append(elapsed)
        return times[2:]

    raw = [raw_chain() for _ in range(repeats)]
    engine = asyncio.run(engine_runs(noop_steps))
    engine_inline = asyncio.run(engine_runs(transform_steps))
    plain = [plain_chain() for _ in range(repeats)]
    raw_ms, eng_ms = statistics.median(raw) * 1000, statistics.median(engine) * 1000
    inl_ms, plain_ms = statistics.median(engine_inline) * 1000, statistics.median(plain) * 1000
    return {
        "raw_20_task_chain_ms": round(raw_ms, 2),
        "engine_20_task_steps_ms": round(eng_ms, 2),
        "ratio_engine_vs_raw_chain": round(eng_ms / raw_ms, 2),
        "engine_overhead_per_step_ms": round((eng_ms - raw_ms) / 20, 2),
        "plain_python_20_transforms_ms": round(plain_ms, 3),
        "engine_20_inline_transform_steps_ms": round(inl_ms, 2),
        "ratio_inline_engine_vs_plain_python": round(inl_ms / plain_ms, 1),
        "engine_inline_per_step_ms": round(inl_ms / 20, 2),
        "note": "engine times are driver-observed: validation, record creation, 2 store writes per step, "
        f"and the runner actor round trip included; medians of {repeats} runs",
    }


def _ray_worker_processes() -> dict[str, int]:
    """Ray worker processes by title (actors show as ``ray::ClassName``, idle workers as ``ray::IDLE``)."""
    import psutil

    counts: dict[str, int] = {}
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if cmd.startswith("ray::") or "default_worker.py" in cmd:
            name = cmd.split()[0].split(".")[0] if cmd.startswith("ray::") else "ray::(starting)"
            counts[name] = counts.get(name, 0) + 1
    counts["total"] = sum(counts.values())
    return counts


def b2(settings: Settings, quotes_url: str, repeats: int = 5) -> dict[str, Any]:
    from actors.cluster import start_cluster

    runner = start_cluster(settings).runner
    steps = [
        {
            "step": i,
            "target": "http",
            "action": "fetch",
            "intent": f"{quotes_url}/api/sleep",
            "params": {"ms": 200},
        }
        for i in range(1, 101)
    ]
    body = {"mode": "dag", "steps": steps}

    async def runs() -> list[tuple[float, dict[str, Any]]]:
        return [await _run_workflow(runner, "bench", body) for _ in range(repeats + 1)]

    async def pool_direct() -> float:
        """Baseline: the same 100 HTTP calls through the same I/O actors, without the engine."""
        from actors.io_pool import io_pool
        from linqra.steps.base import StepCall

        pool = io_pool(settings)
        calls = [
            StepCall(
                "bench",
                "bench",
                i,
                "http",
                "fetch",
                f"{quotes_url}/api/sleep",
                {"ms": 200},
                None,
                {},
                None,
                False,
                "io",
                30,
                1,
                0.2,
                10,
                2,
            )
            for i in range(100)
        ]
        t0 = time.perf_counter()
        outcomes = await asyncio.gather(
            *(pool[i % len(pool)].execute.remote(c) for i, c in enumerate(calls))
        )
        assert all(o.status == "COMPLETED" for o in outcomes)
        return time.perf_counter() - t0

    async def direct_runs() -> list[float]:
        return [await pool_direct() for _ in range(repeats + 1)][1:]

    direct = statistics.median(asyncio.run(direct_runs()))
    results = asyncio.run(runs())[1:]
    walls = [r[0] for r in results]
    execs = [r[1]["duration_ms"] / 1000 for r in results]
    for _, record in results:
        assert record["status"] == "COMPLETED", record.get("error")
    wall = statistics.median(walls)
    inner = statistics.median(execs)
    return {
        "wall_s_driver": round(wall, 3),
        "ratio_wall_vs_200ms": round(wall / 0.2, 2),
        "execution_duration_s": round(inner, 3),
        "ratio_execution_vs_200ms": round(inner / 0.2, 2),
        "baseline_same_calls_via_pool_without_engine_s": round(direct, 3),
        "ratio_baseline_vs_200ms": round(direct / 0.2, 2),
        "ratio_execution_vs_baseline": round(inner / direct, 2),
        "ray_worker_processes": _ray_worker_processes(),
        "io_pool_actors": settings.execution.io_pool_size,
        "note": f"median of {repeats} runs after one warm-up; sequential would take 20 s",
    }


B3_DAG = {
    "name": "b3-first-run",
    "mode": "dag",
    "steps": [  # three 600 ms steps at once: two on the I/O pool, one a CPU task
        {"step": 1, "target": "wait", "params": {"seconds": 0.6}},
        {"step": 2, "target": "wait", "params": {"seconds": 0.6}},
        {"step": 3, "target": "wait", "executor": "task", "params": {"seconds": 0.6}},
    ],
}


def _request(url: str, body: dict[str, Any] | None = None) -> tuple[float, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"X-Team-Id": "bench", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers)
    t0 = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as answer:
        record = json.loads(answer.read())
    return time.perf_counter() - t0, record


def _first_and_warm(base: str, warm_runs: int) -> dict[str, Any]:
    """Right after the first 200: create a workflow, run it (the first execution), then again."""
    created_s, workflow = _request(f"{base}/v1/workflows", B3_DAG)
    url = f"{base}/v1/workflows/{workflow['id']}/execute?wait=true"
    times = []
    for _ in range(1 + warm_runs):
        elapsed, record = _request(url, {"params": {}})
        assert record["status"] == "COMPLETED", record
        times.append(elapsed)
    first, warm = times[0], statistics.median(times[1:])
    return {
        "create_workflow_s": round(created_s, 3),
        "first_execution_s": round(first, 3),
        "warm_execution_s": round(warm, 3),
        "ratio_first_vs_warm": round(first / warm, 2),
    }


def b3(warm_runs: int = 5) -> dict[str, Any]:
    """``linqra up`` to the first 200 from ``/healthz`` (and ``linqra up``'s own account of its
    phases); then a 3-step DAG of 600 ms steps, the first execution against the next ones."""
    from benchmarks.cold_start import LINQRA_UP, linqra_env, started

    port = free_port()
    data = tempfile.mkdtemp(prefix="linqra-b3-")
    base = f"http://127.0.0.1:{port}"
    load = os.getloadavg()
    out: dict[str, Any] = {}
    said: list[str] = []
    try:
        with started(LINQRA_UP, linqra_env(port, data), port) as up:
            out["cold_start_to_healthy_s"] = up["healthy_s"]
            if up["healthy_s"] is not None:
                out.update(_first_and_warm(base, warm_runs))
            said = up["said"]
            deadline = time.monotonic() + 30
            while not any("start-up:" in line for line in said) and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    phases = [line.split("start-up:", 1)[1].strip() for line in said if "start-up:" in line]
    out["linqra_up_phases"] = phases[0] if phases else "".join(said[-20:])
    out["load_average_before"] = [round(x, 2) for x in load]
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main(argv: list[str]) -> None:
    which = set(argv) or {"b1", "b2", "b3"}
    out: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, {platform.python_version()}, {platform.platform()}",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if "b3" in which:  # first: it needs no other Ray cluster running
        out["B3"] = b3()
        print("B3", json.dumps(out["B3"]), flush=True)
    if which & {"b1", "b2"}:
        import ray

        quotes_url, stop = serve_quotes()
        settings = bench_settings(
            Path(tempfile.mkdtemp(prefix="linqra-bench-")),
            {"quotes-service": ServiceConfig(urls=[quotes_url])},
        )
        init_local_ray()
        try:
            if "b1" in which:
                out["B1"] = b1(settings)
                print("B1", json.dumps(out["B1"]), flush=True)
            if "b2" in which:
                out["B2"] = b2(settings, quotes_url)
                print("B2", json.dumps(out["B2"]), flush=True)
        finally:
            ray.shutdown()
            stop()
    RESULTS.mkdir(exist_ok=True)
    latest = RESULTS / "latest.json"
    earlier = json.loads(latest.read_text()) if latest.exists() else {}
    for key in ("B1", "B2", "B3"):  # a measure not run this time keeps its figures and date
        if key not in out and key in earlier:
            out[key] = {"when": earlier.get("when"), **earlier[key]}
    latest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main([a.lower() for a in sys.argv[1:]])
