"""Where the Ray paths of issue 15 spend their time: a Ray-task step, and a one-step workflow
through ``POST /v1/workflows/{id}/execute?wait=true`` (docs/perf/ray-profile.md).

    python -m benchmarks.profile_ray task [--cycles 4] [--pyspy]  # B1's path, 1 and 20 steps
    python -m benchmarks.profile_ray http [--cycles 10] [--pyspy]  # the gateway on Serve

One local Ray cluster (2 CPUs) with the cluster's actors, and a probe actor shaped like the
runner (``task``) or the gateway replica (``http``, Serve behind HAProxy as ``linqra up``). The
variants take turns; the probes wrap instances in their own processes only (a timed
executor, a store meter; :mod:`benchmarks._profile_ray_probes`). ``--pyspy`` adds flame graphs;
numbers go to ray-profile-<mode>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import ray
from ray import serve

from actors.cluster import start_cluster
from benchmarks._profile_ray_probes import (
    GATEWAY_CALLS,
    TEAM,
    GatewayProbe,
    Probe,
    Shipped,
    noop,
    probe_actor,
    ref_chain,
    step_call,
    steps,
)
from benchmarks._support import bench_settings, free_port, init_local_ray, wait_steady
from deployments.gateway import build_app
from deployments.serve_config import APP_NAME, apply_ingress_env, logging_config

__all__ = ["Shipped", "http_mode", "main", "noop", "probe_actor", "step_call", "task_mode"]

ROOT = Path(__file__).resolve().parent.parent
KEEP = 6  # runs of a variant kept per cycle, after one that warms its path up
TABLE = ("1_step_ms", "20_steps_ms", "per_step_ms", "fixed_ms")
PYSPY = ROOT / ".venv" / "bin" / "py-spy"
PYSPY_MODES = (("", "--nonblocking"), (".gil", "--nonblocking --gil"))  # --native: see the doc
EXECUTE_WAIT = "http_execute_wait"


def _pids(title: str) -> list[int]:
    """Processes of this driver's cluster titled ``title…`` (another cluster may run here)."""
    import psutil

    mine = psutil.Process().children(recursive=True)
    return [p.pid for p in mine if " ".join(p.cmdline()).startswith(title)]


def _replica_url() -> str:
    """The gateway replica's direct-ingress address, from the HAProxy config Serve wrote."""
    base = Path(os.environ["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]).parent
    config = max(base.glob("*/haproxy.cfg"), key=lambda p: p.stat().st_mtime).read_text()
    return "http://" + config.split("SERVE_REPLICA_linqra-Gateway")[1].split()[1]


def _seconds(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _interleave(variants: dict[str, Callable[[], float]], cycles: int) -> dict[str, list[float]]:
    """Each cycle runs every variant 1 + KEEP times in a row, as B1 does, and keeps the last KEEP
    (the first warms its path up); cycle 0 is all warm-up. A drift hits all variants alike."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for cycle in range(cycles + 1):
        for name, fn in variants.items():
            runs = [fn() for _ in range(1 + KEEP)][1:]
            times[name] += runs if cycle else []
    return times


def _pyspy(targets: dict[str, int], out: Path, secs: float, load: Callable[[], Any]) -> Any:
    """Flame graphs of each target pid while ``load`` repeats: ``<name>.svg`` (every thread)
    and ``<name>.gil.svg`` (only the thread holding the GIL: where Python CPU goes)."""
    made: dict[str, Any] = {"pids": targets}
    for tag, flags in PYSPY_MODES:
        cmd = f"{PYSPY} record --rate 100 --duration {int(secs)} --format flamegraph {flags}"
        procs = []
        for name, pid in targets.items():
            argv = [*cmd.split(), "--pid", str(pid), "--output", str(out / f"{name}{tag}.svg")]
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        time.sleep(1.0)  # py-spy attaches
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < secs - 1.5:
            load()
            n += 1
        for p in procs:
            _, err = p.communicate(timeout=120)
            if p.returncode:
                print("py-spy:", err.decode()[-400:], file=sys.stderr)
        made[f"runs{tag or '.all'}"] = n
    return made


def task_mode(args: argparse.Namespace) -> dict[str, Any]:
    settings = bench_settings(Path(tempfile.mkdtemp(prefix="linqra-rayprof-")))
    init_local_ray()
    try:
        cluster = start_cluster(settings)
        wait_steady(cluster)
        probe = probe_actor(Probe, settings)
        ray.get(probe.setup.remote())

        def b1_path(n: int, executor: str = "task") -> float:  # B1's engine runs
            t0 = time.perf_counter()
            record = ray.get(cluster.runner.run_definition.remote(TEAM, steps(n, executor), {}))
            assert record["status"] == "COMPLETED", record.get("error")
            return time.perf_counter() - t0

        kinds: dict[str, Callable[[int], float]] = {
            "driver_raw_ref_chain": lambda n: _seconds(lambda: ray.get(ref_chain(n))),  # B1's
            "b1_run_definition": b1_path,
            "b1_run_definition_io": lambda n: b1_path(n, "io"),
            "b1_run_definition_inline": lambda n: b1_path(n, "inline"),
        }
        probed = "raw_ref_chain raw_awaited cpu_step_awaited actor_awaited engine_task engine_io"
        for v in (probed + " engine_actor engine_inline").split():
            kinds[v] = lambda n, v=v: ray.get(probe.run.remote(v, n))
        variants = {
            f"{k}/{n}": (lambda k=k, n=n: kinds[k](n) * 1000) for k in kinds for n in (1, 20)
        }
        times = _interleave(variants, args.cycles or 4)
        table = {}
        for k in kinds:
            one, twenty = statistics.median(times[f"{k}/1"]), statistics.median(times[f"{k}/20"])
            slope = (twenty - one) / 19
            values = (one, twenty, slope, one - slope)
            table[k] = {n: round(v, 3) for n, v in zip(TABLE, values, strict=True)}
        out: dict[str, Any] = {"variants": table}
        out["timed_20_steps"] = ray.get(probe.timed_runs.remote(20, KEEP * (args.cycles or 4)))
        out["timed_1_step"] = ray.get(probe.timed_runs.remote(1, KEEP * (args.cycles or 4)))
        if args.pyspy:
            worker = out["timed_20_steps"]["worker_pids"][0]
            targets = {"ray-runner-b1": _pids("ray::RunnerActor")[0], "ray-task-worker": worker}
            out["pyspy"] = _pyspy(targets, Path(args.out), args.seconds, lambda: b1_path(20))
        return out
    finally:
        ray.shutdown()


def http_mode(args: argparse.Namespace) -> dict[str, Any]:
    apply_ingress_env()  # HAProxy, as `linqra up`
    settings = bench_settings(Path(tempfile.mkdtemp(prefix="linqra-rayprof-")))
    init_local_ray()
    try:
        port = free_port()
        serve.start(
            http_options={"host": "127.0.0.1", "port": port}, logging_config=logging_config()
        )
        serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        http = httpx.Client(base_url=url, headers={"X-Team-Id": TEAM}, timeout=30)
        while http.get("/healthz").status_code != 200:  # serve.run returns once it is up
            time.sleep(0.1)
        body = {"name": "one-noop", "steps": [{"step": 1, "target": "noop", "params": {"a": 1}}]}
        wf = http.post("/v1/workflows", json=body).json()["id"]
        probe = probe_actor(GatewayProbe, settings)
        ray.get(probe.setup.remote(wf))

        def request(path: str, method: str = "GET") -> float:
            t0 = time.perf_counter()
            r = http.request(method, path, json={} if method == "POST" else None)
            elapsed = (time.perf_counter() - t0) * 1000
            assert r.status_code < 300, r.text
            if r.status_code == 202:  # untimed: the run ends before the next request starts
                http.post(f"{execute}?wait=true", json={})
            return elapsed

        execute = f"/v1/workflows/{wf}/execute"
        direct = _replica_url()  # the replica's own HTTP server, which HAProxy forwards to
        variants: dict[str, Callable[[], float]] = {
            EXECUTE_WAIT: lambda: request(f"{execute}?wait=true", "POST"),
            "http_execute_202": lambda: request(execute, "POST"),
            "http_me": lambda: request("/v1/me"),
            "replica_direct_execute_wait": lambda: request(f"{direct}{execute}?wait=true", "POST"),
            "replica_direct_me": lambda: request(f"{direct}/v1/me"),
            "asgi_execute_wait": lambda: ray.get(probe.asgi.remote(f"{execute}?wait=true", "POST")),
            "asgi_me": lambda: ray.get(probe.asgi.remote("/v1/me")),
            "gateway_calls_one_by_one": lambda: sum(phase()[k] for k in GATEWAY_CALLS),
        }
        phases: list[dict[str, float]] = []
        phase = lambda: phases.append(ray.get(probe.phases.remote())) or phases[-1]  # noqa: E731
        times = _interleave(variants, args.cycles or 10)
        phases = [p for i, p in enumerate(phases) if i > KEEP and i % (1 + KEEP)]  # as kept
        out: dict[str, Any] = {"requests_ms": {}, "gateway_calls_p50_ms": {}}
        for k, v in times.items():
            p90 = statistics.quantiles(v, n=10)[8]
            out["requests_ms"][k] = {"p50": round(statistics.median(v), 2), "p90": round(p90, 2)}
        for k in phases[0]:
            out["gateway_calls_p50_ms"][k] = round(statistics.median(p[k] for p in phases), 3)
        if args.pyspy:
            gateway, runner = _pids("ray::ServeReplica:linqra:Gateway"), _pids("ray::RunnerActor")
            targets = {"ray-gateway-execute": gateway[0], "ray-runner-execute": runner[0]}
            out["pyspy"] = _pyspy(targets, Path(args.out), args.seconds, variants[EXECUTE_WAIT])
        serve.shutdown()
        return out
    finally:
        ray.shutdown()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("task", "http"))
    parser.add_argument("--cycles", type=int, help="4 (task), 10 (http)")
    parser.add_argument("--pyspy", action="store_true")
    parser.add_argument("--seconds", type=float, default=12.0, help="py-spy recording length")
    parser.add_argument("--out", default=str(ROOT / "docs" / "perf"))
    args = parser.parse_args(argv)
    git = f"git -C {ROOT} describe --always --dirty".split()
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": subprocess.run(git, capture_output=True, text=True).stdout.strip(),
        "load_before": os.getloadavg(),
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    result.update(task_mode(args) if args.mode == "task" else http_mode(args))
    result["load_after"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    (Path(args.out) / f"ray-profile-{args.mode}.json").write_text(text + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
