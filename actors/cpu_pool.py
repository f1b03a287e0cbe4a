"""Warm workers for CPU steps (``task`` kind): a small pool of synchronous actors the runner
keeps between steps, so a chain of CPU steps does not pay a Ray task's lease, worker hand-off
and ``System`` lookup per step (docs/perf/ray-profile.md, change 1: it saves 1.4 to 2.5 ms a step).

Each :class:`CpuStepWorker` runs one step at a time and belongs to the runner that created it
(it dies with it). It reserves no CPU in Ray's accounting: one that held its CPU while idle
starved the Ray tasks of steps that overflowed (two CPUs, one held by a Serve replica and one by
an idle worker: the overflow task waited until the worker was stopped, and the next step
started a new one). So at most ``cpu_pool_size`` steps run beyond what Ray's CPU count admits.
The pool has at most ``execution.cpu_pool_size`` of them, started as the runner boots and again
by the readiness warm-up's runner ping (``warm=True``), else in the background when a step finds
none free — that step, and every step that finds all of them busy, runs as a Ray task as before, so
fan-out still spreads through Ray's scheduler. A worker idle for
``execution.cpu_pool_idle_seconds`` is stopped and gives its CPUs back. A worker (or task)
works a pure step out without its event loop (:func:`run_cpu_call`).

Cancelling a step kills its worker (a synchronous actor cannot interrupt a running method; a
Ray task is cancelled with ``force`` the same way), and a worker that dies mid-step is the
same failed outcome a dead task worker gives. Ray has no pool of warm actors that a caller
borrows one call at a time with these rules (``ray.util.ActorPool`` neither grows, shrinks
nor overflows to tasks), hence this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray
from ray.exceptions import RayActorError

from actors._context import opened_system, run_sync, shipped_settings
from linqra.config import Settings
from linqra.steps.base import StepCall
from linqra.steps.runtime import StepOutcome, run_pure_now, run_step_call
from linqra.system import System

__all__ = ["CpuPool", "CpuStepWorker", "run_cpu_call"]

log = logging.getLogger(__name__)


class CpuStepWorker:
    """Runs CPU steps one at a time in a warm process."""

    def __init__(self, settings_json: str) -> None:
        self.settings = shipped_settings(settings_json)

    def execute(self, call: StepCall) -> StepOutcome:
        return run_cpu_call(call, self.settings)

    def ready(self) -> bool:
        """Answers once the worker's ``System`` is open (the first step pays nothing)."""
        return run_sync(self.settings, _opened)


async def _opened(system: System) -> bool:
    return True


def run_cpu_call(call: StepCall, settings: Settings) -> StepOutcome:
    """A CPU step run in this (synchronous) process: a pure one (``transform``, ``noop``)
    worked out at once when the process's system is open
    (:func:`~linqra.steps.runtime.run_pure_now`), any other — and a pure one it cannot answer
    at once — on the loop of :func:`~actors._context.run_sync`. Through that loop, a
    ``noop`` cost the warm worker 38 µs in a tight loop and 12 µs without it; between the
    steps of a real chain the difference was ten times that (20 Ray-task steps 1.34-1.36x
    the raw chain of Ray tasks → 1.14-1.17x, docs/perf/ray-profile.md)."""
    system = opened_system(settings)
    if system is not None:
        outcome = run_pure_now(call, system.registry, system.ctx)
        if outcome is not None:
            return outcome
    return run_sync(settings, lambda system: run_step_call(call, system.registry, system.ctx))


class CpuPool:
    """The runner's warm CPU-step workers (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        ex = settings.execution
        self._settings_json = settings.model_dump_json()
        self._size, self._idle_seconds = ex.cpu_pool_size, ex.cpu_pool_idle_seconds
        self._options = {"num_cpus": 0, "max_restarts": 0}  # see the module docstring
        self._idle: list[tuple[Any, float]] = []  # (worker, idle since), most recent last
        self._starting = 0
        self._busy = 0
        self._reaper: asyncio.TimerHandle | None = None
        self._warming: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start the pool's workers now (the runner does as it boots), not on the first steps."""
        while self.workers < self._size:
            self._start_one()

    async def ready(self, timeout: float) -> None:
        """Wait, at most ``timeout`` seconds, for the workers being started."""
        if self._warming:
            await asyncio.wait(set(self._warming), timeout=timeout)

    @property
    def workers(self) -> int:
        """Workers started or starting."""
        return len(self._idle) + self._busy + self._starting

    async def run(self, call: StepCall) -> StepOutcome | None:
        """The step's outcome on a warm worker; ``None`` when none is free (run it as a task)."""
        if not self._idle:
            if self.workers < self._size:
                self._start_one()
            return None
        worker, _ = self._idle.pop()
        self._busy += 1
        try:
            outcome: StepOutcome = await worker.execute.remote(call)
        except asyncio.CancelledError:
            self._busy -= 1
            ray.kill(worker)  # stops the step's work; the pool starts another when needed
            raise
        except RayActorError:
            self._busy -= 1
            raise
        except BaseException:
            self._busy -= 1
            self._give_back(worker)
            raise
        self._busy -= 1
        self._give_back(worker)
        return outcome

    def _give_back(self, worker: Any) -> None:
        self._idle.append((worker, time.monotonic()))
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().call_later(self._idle_seconds, self._reap)

    def _start_one(self) -> None:
        self._starting += 1
        worker: Any = ray.remote(CpuStepWorker).options(**self._options).remote(self._settings_json)

        async def warm() -> None:
            try:
                await worker.ready.remote()
            except Exception:
                log.warning("a CPU-step worker did not start", exc_info=True)
                ray.kill(worker)
                return
            finally:
                self._starting -= 1
            self._give_back(worker)

        task = asyncio.get_running_loop().create_task(warm())
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    def _reap(self) -> None:
        self._reaper = None
        cutoff = time.monotonic() - self._idle_seconds
        keep = [(w, since) for w, since in self._idle if since > cutoff]
        for worker, since in self._idle:
            if since <= cutoff:
                ray.kill(worker)
        self._idle = keep
        if keep:
            oldest = min(since for _, since in keep)
            delay = max(0.1, oldest + self._idle_seconds - time.monotonic())
            self._reaper = asyncio.get_running_loop().call_later(delay, self._reap)
