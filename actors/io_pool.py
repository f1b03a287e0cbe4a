"""The I/O step pool: async actors that run many I/O-bound steps as coroutines.

An HTTP or LLM step spends its time waiting, so it must not cost a worker
process: each :class:`IOStepWorker` (``num_cpus=0``) runs up to
``execution.io_concurrency`` steps at once on one event loop, and the pool has
``execution.io_pool_size`` of them (``linqra-io-0`` …, created by ``actors.cluster``).

Steps arrive one per call (:meth:`IOStepWorker.execute`) or many per call
(:meth:`IOStepWorker.execute_batch`, sent by :mod:`actors.io_batch` when a scheduling round
readies several at once): a batch is a streaming generator that yields, each time it wakes,
every outcome finished since — 1,000 parallel steps cost a few Ray calls, not 1,000 (issue 15).

A worker opens its process's system as it starts, not on its first step, and :meth:`ping`
answers once that is done (issue 15: the first execution after start paid for it).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Any

from actors._context import process_system
from actors.handles import IO_PREFIX, lookup
from linqra.config import Settings
from linqra.steps.base import StepCall
from linqra.steps.runtime import StepOutcome, run_step_call

__all__ = ["BATCH_SLOTS", "BatchItem", "IOStepWorker", "io_pool"]

BATCH_SLOTS = 64
"""Actor calls kept free beside ``io_concurrency`` for batches and their cancels."""

BatchItem = tuple[int, StepOutcome | None, BaseException | None]
"""One finished step of a batch: its index, its outcome, or what it raised."""


class IOStepWorker:
    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        # every step, sent alone or in a batch, takes one of io_concurrency slots
        self._slots = asyncio.Semaphore(self.settings.execution.io_concurrency)
        self._batches: dict[str, list[asyncio.Task[StepOutcome]]] = {}
        # An async actor's constructor runs on its event loop: open the system now. A failure
        # is not lost: the next call opens it again (process_system) and raises it there.
        self._boot = asyncio.get_running_loop().create_task(process_system(self.settings))
        self._boot.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def execute(self, call: StepCall) -> StepOutcome:
        system = await process_system(self.settings)
        async with self._slots:
            return await run_step_call(call, system.registry, system.ctx)

    async def execute_batch(
        self, batch_id: str, calls: list[StepCall]
    ) -> AsyncIterator[list[BatchItem]]:
        """Run ``calls`` at once; yield what has finished each time something has (a cancelled
        step yields nothing). :meth:`cancel` stops steps of the batch by index."""
        system = await process_system(self.settings)
        finished: asyncio.Queue[BatchItem] = asyncio.Queue()

        async def one(call: StepCall) -> StepOutcome:
            async with self._slots:
                return await run_step_call(call, system.registry, system.ctx)

        def report(index: int, task: asyncio.Task[StepOutcome]) -> None:
            if task.cancelled():
                finished.put_nowait((index, None, None))
            else:
                error = task.exception()
                finished.put_nowait((index, None if error else task.result(), error))

        tasks = []
        for index, call in enumerate(calls):
            task = asyncio.create_task(one(call))
            task.add_done_callback(functools.partial(report, index))
            tasks.append(task)
        self._batches[batch_id] = tasks
        try:
            left = len(tasks)
            while left:
                items = [await finished.get()]
                while not finished.empty():
                    items.append(finished.get_nowait())
                left -= len(items)
                done = [item for item in items if item[1] is not None or item[2] is not None]
                if done:
                    yield done
        finally:  # the caller went away (or the runner died): its steps stop too
            del self._batches[batch_id]
            for task in tasks:
                task.cancel()

    async def cancel(self, batch_id: str, indices: list[int]) -> None:
        """Cancel steps of a running batch (unknown batches and indices are ignored)."""
        tasks = self._batches.get(batch_id, [])
        for index in indices:
            if 0 <= index < len(tasks):
                tasks[index].cancel()

    async def in_flight(self) -> int:
        """Steps of batches this worker is running now."""
        return sum(not task.done() for tasks in self._batches.values() for task in tasks)

    async def ping(self) -> str:
        """``"ok"`` once this worker's system is open."""
        await process_system(self.settings)
        return "ok"


def io_pool(settings: Settings) -> list[Any]:
    """The pool's actors (looked up by name)."""
    return [lookup(settings, f"{IO_PREFIX}{i}") for i in range(settings.execution.io_pool_size)]
