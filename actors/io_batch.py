"""Sending I/O steps to the pool: one Ray call per scheduling round, not one per step.

A DAG round readies every independent step at once; sending each as its own actor call cost
the runner about 1 ms of CPU a step (a fan-out of 1,000 spent 30 % of its time submitting, 16 %
in Ray's serialisation: docs/perf/ray-profile.md). :class:`IOBatcher` collects the calls made in
one turn of the event loop and sends them as one :meth:`~actors.io_pool.IOStepWorker.execute_batch`
per pool actor — a streaming generator whose items are lists of finished outcomes — so a result
still reaches its step as soon as the worker has it. A lone call keeps the plain per-call path
(one round trip, nothing to stream).

Cancelling a step's await cancels that step on its worker (``cancel`` by index, the indices of
one turn sent together); a worker that dies fails the steps of its batches with its error, as a
per-call step would. Ray has no batching of actor calls of its own, hence this module.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import ray

from actors.io_pool import io_pool
from linqra.config import Settings
from linqra.steps.base import StepCall
from linqra.steps.runtime import StepOutcome

__all__ = ["IOBatcher"]

MIN_SHARE = 16
"""A round is split over the pool's actors only in shares of at least this many steps."""


class _Sent:
    """Where a call of a batch went, so its cancel can follow it."""

    __slots__ = ("actor", "batch_id", "index")

    def __init__(self, actor: Any, batch_id: str, index: int) -> None:
        self.actor, self.batch_id, self.index = actor, batch_id, index


class IOBatcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool: list[Any] | None = None
        self._next = itertools.cycle(range(settings.execution.io_pool_size))
        self._round: list[tuple[StepCall, asyncio.Future[StepOutcome]]] = []
        self._sent: dict[asyncio.Future[StepOutcome], _Sent] = {}
        self._cancels: dict[str, tuple[Any, list[int]]] = {}
        self._consumers: set[asyncio.Task[None]] = set()

    async def execute(self, call: StepCall) -> StepOutcome:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[StepOutcome] = loop.create_future()
        if not self._round:
            loop.call_soon(self._send_round)
        self._round.append((call, future))
        try:
            return await future
        except asyncio.CancelledError:
            self._cancel(future)
            raise
        finally:
            self._sent.pop(future, None)

    def _actor(self) -> Any:
        if self._pool is None:
            self._pool = io_pool(self.settings)
        return self._pool[next(self._next)]

    def _send_round(self) -> None:
        calls = [(call, future) for call, future in self._round if not future.done()]
        self._round = []
        if len(calls) == 1:
            self._spawn(self._single(self._actor(), *calls[0]))
            return
        shares = max(1, min(self.settings.execution.io_pool_size, len(calls) // MIN_SHARE))
        for k in range(shares):
            share = calls[k::shares]
            if share:
                self._spawn(self._batch(self._actor(), share))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._consumers.add(task)
        task.add_done_callback(self._consumers.discard)

    async def _single(
        self, actor: Any, call: StepCall, future: asyncio.Future[StepOutcome]
    ) -> None:
        ref = actor.execute.remote(call)
        waiter = asyncio.ensure_future(ref)
        future.add_done_callback(lambda f: f.cancelled() and ray.cancel(ref))
        try:
            outcome = await waiter
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(outcome)

    async def _batch(
        self, actor: Any, share: list[tuple[StepCall, asyncio.Future[StepOutcome]]]
    ) -> None:
        batch_id = uuid.uuid4().hex
        futures = [future for _, future in share]
        for index, future in enumerate(futures):
            self._sent[future] = _Sent(actor, batch_id, index)
        stream = actor.execute_batch.options(num_returns="streaming").remote(
            batch_id, [call for call, _ in share]
        )
        failure: BaseException | None = None
        try:
            async for ref in stream:
                for index, outcome, error in await ref:
                    future = futures[index]
                    if future.done():
                        continue
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(outcome)
        except Exception as exc:  # the worker died or the call failed: its steps fail with it
            failure = exc
        for future in futures:
            if not future.done():
                future.set_exception(
                    failure or RuntimeError("the I/O worker ended a batch without this step")
                )

    def _cancel(self, future: asyncio.Future[StepOutcome]) -> None:
        sent = self._sent.get(future)
        if sent is None:  # not sent yet: _send_round skips it
            return
        if not self._cancels:
            asyncio.get_running_loop().call_soon(self._send_cancels)
        self._cancels.setdefault(sent.batch_id, (sent.actor, []))[1].append(sent.index)

    def _send_cancels(self) -> None:
        cancels, self._cancels = self._cancels, {}
        for batch_id, (actor, indices) in cancels.items():
            actor.cancel.remote(batch_id, indices)
