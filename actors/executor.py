"""The Ray step executor: where each kind of step runs.

* ``task`` — CPU-bound work (``execution.cpu_step_num_cpus`` CPUs): on a warm worker of the
  runner's :class:`~actors.cpu_pool.CpuPool` when one is free, else a Ray task;
* ``io`` — a coroutine in the async I/O pool, the steps of one scheduling round sent together
  (:mod:`actors.io_batch`).

A step whose actor, worker process or node dies under it raises
:class:`~linqra.steps.base.WorkerLost`, which the engine answers by sending it again.

The engine awaits each step's ObjectRef on its event loop (never ``ray.get``
in a loop), so every ready step is in flight at once; cancelling the await
cancels the Ray work (``ray.cancel``; for async actor calls that cancels the
coroutine, which closes the HTTP request).
"""

from __future__ import annotations

import asyncio

import ray
from ray.exceptions import (
    ActorUnavailableError,
    LocalRayletDiedError,
    NodeDiedError,
    ObjectLostError,
    RayActorError,
    WorkerCrashedError,
)

from actors._context import shipped_settings
from actors.cpu_pool import CpuPool, run_cpu_call
from actors.io_batch import IOBatcher
from linqra.config import Settings
from linqra.steps.base import StepCall, WorkerLost
from linqra.steps.runtime import StepOutcome

__all__ = ["LOST", "RayExecutor"]

LOST = (RayActorError, WorkerCrashedError, NodeDiedError, ObjectLostError, LocalRayletDiedError)
"""Ray's errors for a step whose actor, worker process or node died under it."""


@ray.remote(max_retries=0)
def run_cpu_step(call: StepCall, settings_json: str) -> StepOutcome:
    return run_cpu_call(call, shipped_settings(settings_json))


class RayExecutor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._settings_json = settings.model_dump_json()
        self._io = IOBatcher(settings)
        self._cpu = run_cpu_step.options(num_cpus=settings.execution.cpu_step_num_cpus)
        self._warm = CpuPool(settings) if settings.execution.cpu_pool_size else None

    def start(self) -> None:
        """Start the warm CPU-step workers (on the running loop)."""
        if self._warm is not None:
            self._warm.start()

    async def ready(self, timeout: float = 30.0) -> None:
        """Wait, at most ``timeout`` seconds, for the warm workers being started."""
        if self._warm is not None:
            await self._warm.ready(timeout)

    async def execute(self, call: StepCall) -> StepOutcome:
        try:
            return await self._execute(call)
        except LOST as exc:  # its process or node died: the engine sends it elsewhere
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            restarting = isinstance(exc, ActorUnavailableError)  # Ray is starting it again
            raise WorkerLost(message, restarting=restarting) from exc

    async def _execute(self, call: StepCall) -> StepOutcome:
        if call.kind == "io":
            return await self._io.execute(call)
        if self._warm is not None:
            warm = await self._warm.run(call)
            if warm is not None:
                return warm
        ref = self._cpu.remote(call, self._settings_json)
        try:
            outcome: StepOutcome = await ref
        except asyncio.CancelledError:
            ray.cancel(ref, force=True)
            raise
        return outcome
