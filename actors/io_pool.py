"""The I/O step pool: async actors that run many I/O-bound steps as coroutines.

An HTTP or LLM step spends its time waiting, so it must not cost a worker
process: each :class:`IOStepWorker` (``num_cpus=0``) runs up to
``execution.io_concurrency`` steps at once on one event loop, and the pool has
``execution.io_pool_size`` of them (``linqra-io-0`` …, created by ``actors.cluster``).

A worker opens its process's system as it starts, not on its first step, and :meth:`ping`
answers once that is done (issue 15: the first execution after start paid for it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from actors._context import process_system
from actors.handles import IO_PREFIX, lookup
from linqra.config import Settings
from linqra.steps.base import StepCall
from linqra.steps.runtime import StepOutcome, run_step_call

__all__ = ["IOStepWorker", "io_pool"]


class IOStepWorker:
    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        # An async actor's constructor runs on its event loop: open the system now. A failure
        # is not lost: the next call opens it again (process_system) and raises it there.
        self._boot = asyncio.get_running_loop().create_task(process_system(self.settings))
        self._boot.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def execute(self, call: StepCall) -> StepOutcome:
        system = await process_system(self.settings)
        return await run_step_call(call, system.registry, system.ctx)

    async def ping(self) -> str:
        """``"ok"`` once this worker's system is open."""
        await process_system(self.settings)
        return "ok"


def io_pool(settings: Settings) -> list[Any]:
    """The pool's actors (looked up by name)."""
    return [lookup(settings, f"{IO_PREFIX}{i}") for i in range(settings.execution.io_pool_size)]
