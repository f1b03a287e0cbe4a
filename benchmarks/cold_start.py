"""Cold start beside bare Ray Serve (issue 15, parts 5 and 6): ``linqra up`` to its first 200
from ``/healthz``, against Ray and Serve started the same way with nothing of Linqra's on them,
in turns, in one run, as a ratio.

    python -m benchmarks.cold_start [--rounds 3] [--write-docs]

The peer (``python -m benchmarks.cold_start --bare PORT DASHBOARD_PORT``, a process of its own)
does what ``linqra up`` does to Ray and Serve — the HAProxy ingress chosen
(``apply_ingress_env``), ``ray.init`` of a local cluster with 2 CPUs and the dashboard,
``serve.start`` with the gateway's logging config — and runs one FastAPI deployment that answers
``/healthz`` at once. What it takes is the floor under any Serve application on this machine;
what ``linqra up`` takes beyond it is Linqra's: its actors, the gateway and the chat
orchestrator, Milvus Lite and the warm-up that makes healthy mean ready (B3,
docs/benchmarks.md).

Each start runs in a session of its own (``start_new_session``); at its first 200 the CPU
seconds of every process of that session still alive are summed by kind (:func:`_kind`): Ray's
core (GCS, raylet, dashboard, log monitor, agents), Serve's (controller, proxy, HAProxy) and
the rest (the driver, actors, replicas, Milvus Lite). A start is stopped with SIGINT, as Ctrl-C
would, and the next begins only once its processes are gone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from benchmarks._support import ROOT, free_port, publish, stamp

RESULTS = Path(__file__).resolve().parent / "results" / "cold_start.json"
BEGIN = "<!-- cold-start: written by python -m benchmarks.cold_start -->"
END = "<!-- end of cold-start -->"
TIMEOUT_SECONDS = 180.0
KINDS = ("ray", "serve", "rest")
TIMES = "\u00d7"


def _kind(command: str) -> str:
    """Whose process this is, by its command line: Ray's core (with the worker processes Ray
    starts ahead, still idle), Serve's, or the rest."""
    ray_core = ("gcs_server", "raylet", "dashboard", "log_monitor", "monitor.py", "agent", "idle")
    if any(part in command.lower() for part in ray_core):
        return "ray"
    if any(part in command.lower() for part in ("servecontroller", "proxyactor", "haproxy")):
        return "serve"
    return "rest"


def _in_session(session: int) -> list[Any]:
    """The live processes of ``session`` (psutil's, with their command lines); not zombies, which
    are gone but for their exit status (one whose parent never reaps it would be waited on in
    vain)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getsid(proc.pid) == session:
                found.append(proc)
    return found


def _session_cpu(session: int) -> dict[str, Any]:
    """CPU seconds so far of every live process in ``session``, by :func:`_kind`, and of the
    rest by process (a Ray worker by its title, ``ray::RunnerActor``; else its command)."""
    used = dict.fromkeys(KINDS, 0.0)
    rest: dict[str, float] = {}
    for proc in _in_session(session):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            command = " ".join(proc.info["cmdline"] or ())
            kind = _kind(command)
            used[kind] += times.user + times.system
            if kind == "rest":
                title = command.split()[0] if command.startswith("ray::") else command[-60:]
                rest[title] = round(rest.get(title, 0.0) + times.user + times.system, 2)
    return {
        **{k: round(v, 2) for k, v in used.items()},
        "rest_by_process": dict(sorted(rest.items(), key=lambda kv: -kv[1])),
    }


@contextlib.contextmanager
def started(command: list[str], env: dict[str, str], port: int) -> Iterator[dict[str, Any]]:
    """Start ``command`` in a session of its own and wait for the first 200 from
    ``http://127.0.0.1:{port}/healthz``; yields ``{"healthy_s", "cpu_s", "said"}`` (``healthy_s``
    ``None`` if it never came), then stops it with SIGINT and waits for its session to end."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # our SIGINT only, as Ctrl-C in its own terminal
    )
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(proc.stdout or []), daemon=True)
    reader.start()
    out: dict[str, Any] = {"healthy_s": None, "cpu_s": None, "said": said}
    healthz = f"http://127.0.0.1:{port}/healthz"
    try:
        while time.perf_counter() - t0 < TIMEOUT_SECONDS and proc.poll() is None:
            with contextlib.suppress(OSError), urllib.request.urlopen(healthz, timeout=2) as r:
                if r.status == 200:
                    out["healthy_s"] = round(time.perf_counter() - t0, 2)
                    out["cpu_s"] = _session_cpu(proc.pid)
                    break
            time.sleep(0.1)
        yield out
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()  # never `ray stop`: it would stop every Ray cluster on the machine
            proc.wait()
        reader.join(5)
        _wait_session_gone(proc.pid)


def _wait_session_gone(session: int, timeout: float = 60.0) -> None:
    """Wait until no process of ``session`` is left (Ray's processes stop as their driver
    ends); kill what is left after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = _in_session(session)
        if not left:
            return
        if time.monotonic() > deadline:
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            return
        time.sleep(0.2)


def linqra_env(port: int, data: str) -> dict[str, str]:
    """``linqra up``'s environment for a start on ``port`` with its data in ``data``."""
    env = {
        **os.environ,
        "LINQRA_HTTP__PORT": str(port),
        "LINQRA_DATA_DIR": data,
        "LINQRA_RAY__DASHBOARD_PORT": str(free_port()),
    }
    env.pop("RAY_ADDRESS", None)
    return env


LINQRA_UP = [sys.executable, "-m", "deployments.cli", "up"]


def _one(side: str) -> dict[str, Any]:
    port = free_port()
    data = tempfile.mkdtemp(prefix="linqra-cold-")
    env = linqra_env(port, data)
    if side == "linqra":
        command = LINQRA_UP
    else:
        command = [
            sys.executable,
            "-m",
            "benchmarks.cold_start",
            "--bare",
            str(port),
            str(free_port()),
        ]
    try:
        with started(command, env, port) as out:
            pass
    finally:
        shutil.rmtree(data, ignore_errors=True)
    if out["healthy_s"] is None:
        raise RuntimeError(f"{side} never answered /healthz: {''.join(out['said'][-20:])}")
    return {"healthy_s": out["healthy_s"], "cpu_s": out["cpu_s"]}


def measure(rounds: int) -> dict[str, Any]:
    """``rounds`` turns of both starts, the first of each turn alternating."""
    runs: dict[str, list[dict[str, Any]]] = {"linqra": [], "bare": []}
    for turn in range(rounds):
        order = ("bare", "linqra") if turn % 2 == 0 else ("linqra", "bare")
        for side in order:
            runs[side].append(_one(side))
            print(side, runs[side][-1], flush=True)
    ratios = [
        a["healthy_s"] / b["healthy_s"] for a, b in zip(runs["linqra"], runs["bare"], strict=True)
    ]
    med = {s: statistics.median(r["healthy_s"] for r in rs) for s, rs in runs.items()}
    cpu = {
        s: {k: round(statistics.median(r["cpu_s"][k] for r in rs), 2) for k in KINDS}
        for s, rs in runs.items()
    }
    return {
        "rounds": rounds,
        "runs": runs,
        "healthy_s": med,
        "linqra_over_bare": round(statistics.median(ratios), 2),
        "linqra_minus_bare_s": round(med["linqra"] - med["bare"], 1),
        "cpu_s_median": cpu,
    }


def _table(r: dict[str, Any]) -> str:
    h, cpu = r["healthy_s"], r["cpu_s_median"]

    def cpus(side: str) -> str:
        c = cpu[side]
        return f"{sum(c.values()):.1f} (Ray {c['ray']}, Serve {c['serve']}, the rest {c['rest']})"

    return "\n".join([
        BEGIN,
        "",
        f"{r['when']}, commit {r['commit']}, load {r['load']}: `python -m benchmarks.cold_start "
        f"--rounds {r['rounds']}` (each start a process of its own, in turns; medians).",
        "",
        "| measure | Linqra (`linqra up`) | bare Ray Serve | ratio |",
        "| --- | --- | --- | --- |",
        f"| start to the first 200 from `/healthz` | {h['linqra']:.1f} s | {h['bare']:.1f} s "
        f"| **{r['linqra_over_bare']}{TIMES}** |",
        f"| CPU seconds of the start's processes by then | {cpus('linqra')} | {cpus('bare')} | |",
        "",
        END,
    ])  # fmt: skip


def bare(port: int, dashboard_port: int) -> None:
    """The peer: Ray and Serve as ``linqra up`` starts them, one no-op deployment on them
    (its own, not ``compare_cluster``'s: importing that module would load Linqra's actors and
    gateway into the peer's start)."""
    import logging

    import ray
    from fastapi import FastAPI
    from ray import serve

    from deployments.serve_config import apply_ingress_env, logging_config

    apply_ingress_env()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=True,
        dashboard_port=dashboard_port,
        logging_level=logging.WARNING,
    )
    serve.start(
        http_options={"host": "127.0.0.1", "port": port},
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    app = FastAPI()

    @serve.deployment(logging_config=logging_config())
    @serve.ingress(app)
    class Bare:
        @app.get("/healthz")
        async def healthz(self) -> dict[str, str]:
            return {"status": "ok"}

    serve.run(Bare.bind(), name="bare", route_prefix="/", blocking=False)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()  # type: ignore[no-untyped-call]
    ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_start")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--bare", nargs=2, type=int, metavar=("PORT", "DASHBOARD_PORT"))
    args = parser.parse_args()
    if args.bare:
        bare(*args.bare)
        return
    result = {**stamp(), **measure(args.rounds)}
    publish(result, RESULTS, (BEGIN, END), _table(result), args.write_docs)


if __name__ == "__main__":
    main()
