"""The I/O step pool: async actors that run many I/O-bound steps as coroutines.

An HTTP or LLM step spends its time waiting, so it must not cost a worker
process: each :class:`IOStepWorker` (``num_cpus=0``) runs up to
``execution.io_concurrency`` steps at once on one event loop, and the pool has
``execution.io_pool_size`` of them (``linqra-io-0`` …, created by ``actors.cluster`` through
:func:`start_io_worker`). Under load the runner's dispatcher (:mod:`actors.io_batch`) adds more,
up to ``execution.io_pool_max``, and stops an added one once it has been idle a while
(:meth:`IOStepWorker.retire`).

Steps arrive one per call (:meth:`IOStepWorker.execute`) or many per call
(:meth:`IOStepWorker.execute_batch`, sent by :mod:`actors.io_batch` when a scheduling round
readies several at once): a batch is a streaming generator that yields, each time it wakes,
every outcome finished since — 1,000 parallel steps cost a few Ray calls, not 1,000 (issue 15).

A worker opens its process's system as it starts, not on its first step, and :meth:`ping`
answers once that is done (issue 15: the first execution after start paid for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import ray

from actors._context import process_system
from actors.handles import IO_PREFIX, lookup, named_actor
from linqra.config import Settings
from linqra.steps.base import StepCall
from linqra.steps.runtime import StepOutcome, run_step_call

__all__ = ["BATCH_SLOTS", "BatchItem", "IOStepWorker", "io_pool", "start_io_worker"]

log = logging.getLogger(__name__)

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
        self._busy = 0  # steps running or waiting for a slot, sent alone or in a batch
        # An async actor's constructor runs on its event loop: open the system now. A failure
        # is not lost: the next call opens it again (process_system) and raises it there.
        self._boot = asyncio.get_running_loop().create_task(process_system(self.settings))
        self._boot.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def _run(self, call: StepCall) -> StepOutcome:
        self._busy += 1
        try:
            system = await process_system(self.settings)
            async with self._slots:
                return await run_step_call(call, system.registry, system.ctx)
        finally:
            self._busy -= 1

    async def execute(self, call: StepCall) -> StepOutcome:
        return await self._run(call)

    async def execute_batch(
        self, batch_id: str, calls: list[StepCall]
    ) -> AsyncIterator[list[BatchItem]]:
        """Run ``calls`` at once; yield what has finished each time something has (a cancelled
        step yields nothing). :meth:`cancel` stops steps of the batch by index."""
        self._busy += 1  # from its arrival: retire() must not end the worker under it
        try:
            await process_system(self.settings)
        finally:
            self._busy -= 1
        finished: asyncio.Queue[BatchItem] = asyncio.Queue()

        def report(index: int, task: asyncio.Task[StepOutcome]) -> None:
            if task.cancelled():
                finished.put_nowait((index, None, None))
            else:
                error = task.exception()
                finished.put_nowait((index, None if error else task.result(), error))

        tasks = []
        for index, call in enumerate(calls):
            task = asyncio.create_task(self._run(call))
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

    async def retire(self) -> bool:
        """End this worker now if it runs no step (the dispatcher stops an actor it added under
        load once it is idle): ``True`` and the process exits just after answering; ``False``,
        and nothing happens, while a step is running or waiting here — another dispatcher's,
        say. The exit is intentional, so Ray does not restart the actor."""
        if self._busy or self._batches:
            return False
        asyncio.get_running_loop().create_task(self._exit())
        return True

    async def _exit(self) -> None:
        """Exit, unless a step arrived since :meth:`retire` answered (then stay: the dispatcher
        that sent it retires this worker later). No ``await`` between the check and the exit, so
        no step starts in between: a dispatcher whose call fails on a retired worker knows that
        none of its steps ran (:mod:`actors.io_batch` sends them to another worker)."""
        from ray.exceptions import AsyncioActorExit

        if self._busy or self._batches:
            return
        log.info("I/O worker idle: exiting")
        with contextlib.suppress(AsyncioActorExit):
            ray.actor.exit_actor()  # type: ignore[no-untyped-call]


def io_pool(settings: Settings) -> list[Any]:
    """The pool's first ``io_pool_size`` actors (looked up by name): the ones always there."""
    return [lookup(settings, f"{IO_PREFIX}{i}") for i in range(settings.execution.io_pool_size)]


def start_io_worker(
    settings: Settings, index: int, create: Callable[..., Any] = named_actor
) -> Any:
    """Create (or find) the pool's actor ``linqra-io-<index>``: ``actors.cluster`` starts the
    first ``io_pool_size``, :mod:`actors.io_batch` the ones it adds under load. ``create`` is
    :func:`~actors.handles.named_actor` unless the caller passes its own (``actors.cluster``
    passes the one it imported, which the multi-node tests wrap to pin actors to nodes)."""
    return create(
        IOStepWorker,
        settings,
        f"{IO_PREFIX}{index}",
        settings.model_dump_json(),
        max_concurrency=settings.execution.io_concurrency + BATCH_SLOTS,
    )
