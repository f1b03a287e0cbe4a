"""What a Ray-task step's worker side costs, piece by piece (docs/perf/ray-profile.md).

    .venv/bin/python docs/perf/ray_whatif.py [--cycles 6]
    .venv/bin/python docs/perf/ray_whatif.py --hops     # no Ray: what one wake-up costs here

One local Ray cluster (2 CPUs). From an async actor (shaped like the runner), 20 tasks awaited
one at a time, per variant, in blocks that take turns:

noop          B1's bare task (an int in, the same int out)
args_only     the real arguments (a ``StepCall`` and the settings JSON), nothing returned
outcome_only  the real arguments, a ``StepOutcome`` built and returned without running the step
same_thread   the step's coroutine on an event loop of the task's own thread (no thread hop)
run_cpu_step  what ``RayExecutor`` runs today (``actors/executor.py``)

Differences between neighbours are what each layer costs. Nothing in the project changes.

``--hops``: round trips to another thread, another process (a pipe) and through
``asyncio.to_thread`` (how the SQLite store reads), after the other side sat idle 0.5 or 5 ms:
what every hop of a request costs on this VM when nothing keeps the CPUs awake.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import ray

from actors._context import process_system, shipped_settings
from actors.executor import run_cpu_step
from benchmarks._support import bench_settings, init_local_ray
from benchmarks.profile_ray import Shipped, noop, probe_actor, step_call
from linqra.clock import iso
from linqra.steps.runtime import StepOutcome, run_step_call

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
_loops: dict[str, asyncio.AbstractEventLoop] = {}


@ray.remote
def args_only(call: Any, settings_json: str) -> None:
    return None


@ray.remote
def outcome_only(call: Any, settings_json: str) -> StepOutcome:
    shipped_settings(settings_json)
    return StepOutcome("COMPLETED", dict(call.params), None, 1, iso(), iso(), 0.01)


@ray.remote
def same_thread(call: Any, settings_json: str) -> StepOutcome:
    settings = shipped_settings(settings_json)
    loop = _loops.setdefault("loop", asyncio.new_event_loop())

    async def run() -> StepOutcome:
        system = await process_system(settings)
        return await run_step_call(call, system.registry, system.ctx)

    return loop.run_until_complete(run())


class Caller(Shipped):
    async def run(self, variant: str, n: int) -> float:
        """Per task, ms, of ``n`` tasks awaited one at a time."""
        sj = self.settings_json
        submit = {
            "noop": lambda i: noop.remote(i),
            "args_only": lambda i: args_only.remote(step_call(i), sj),
            "outcome_only": lambda i: outcome_only.remote(step_call(i), sj),
            "same_thread": lambda i: same_thread.remote(step_call(i), sj),
            "run_cpu_step": lambda i: run_cpu_step.remote(step_call(i), sj),
        }[variant]
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            await submit(i)
        return (time.perf_counter() - t0) * 1000 / n


def hops() -> None:
    import os
    import queue
    import threading

    def median_us(once: Any, idle: float, n: int = 400) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            once()
            times.append(time.perf_counter() - t0)
            time.sleep(idle)
        return statistics.median(times) * 1e6

    ask, answer = queue.SimpleQueue(), queue.SimpleQueue()
    threading.Thread(
        target=lambda: [answer.put(ask.get()) for _ in iter(int, 1)], daemon=True
    ).start()
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(w1)
        while byte := os.read(r1, 1):  # until the parent closes its end
            os.write(w2, byte)
        os._exit(0)
    loop = asyncio.new_event_loop()
    cases = {
        "thread": lambda: (ask.put(1), answer.get()),
        "process (pipe)": lambda: (os.write(w1, b"x"), os.read(r2, 1)),
        "asyncio.to_thread": lambda: loop.run_until_complete(asyncio.to_thread(int)),
    }
    for name, once in cases.items():
        busy, idle = median_us(once, 0.0005), median_us(once, 0.005)
        print(f"{name:18s} round trip {busy:5.0f} µs after 0.5 ms idle, {idle:5.0f} µs after 5 ms")
    os.close(w1)
    os.waitpid(child, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=6)
    parser.add_argument("--hops", action="store_true")
    args = parser.parse_args()
    if args.hops:
        hops()
        return
    import tempfile

    settings = bench_settings(Path(tempfile.mkdtemp(prefix="linqra-rayprof-")))
    init_local_ray()
    try:
        caller = probe_actor(Caller, settings)
        names = ["noop", "args_only", "outcome_only", "same_thread", "run_cpu_step"]
        per_task: dict[str, list[float]] = {name: [] for name in names}
        for cycle in range(args.cycles + 1):
            for name in names:
                runs = [ray.get(caller.run.remote(name, 20)) for _ in range(4)][1:]
                per_task[name] += runs if cycle else []
        base = None
        for name in names:
            ms = statistics.median(per_task[name])
            step = "" if base is None else f"  (+{ms - base:.3f} over the one above)"
            print(f"{name:13s} {ms:.3f} ms a task{step}")
            base = ms
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
