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

**The pool grows with the queue** (issue 17). The batcher counts the steps it has on each
worker; each share of a round goes to the least loaded one. When the steps in flight (and
waiting) reach ``execution.io_grow_at`` of ``io_concurrency`` times the workers running or
starting, it starts another, ``linqra-io-<n>`` (:func:`~actors.io_pool.start_io_worker`, the
smallest free number), up to ``io_pool_max``. While one starts, the steps that find every
running worker full wait here instead of queueing behind busy ones, and go out as it answers
or as any slot frees, before the steps that came after them. A worker it added that has had no
step for ``io_idle_seconds`` is taken out of the rotation and asked to exit
(:meth:`~actors.io_pool.IOStepWorker.retire`, which refuses while it runs anyone's step). A
restarted runner adopts the added workers it finds running, so they still retire. With
``io_pool_max`` unset nothing grows, nothing waits: as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from typing import Any

import ray
from ray.exceptions import RayActorError

from actors.handles import IO_PREFIX
from actors.io_pool import io_pool, start_io_worker
from linqra.config import Settings
from linqra.steps.base import StepCall
from linqra.steps.runtime import StepOutcome

__all__ = ["IOBatcher"]

log = logging.getLogger(__name__)

MIN_SHARE = 16
"""A round is split over the pool's actors only in shares of at least this many steps."""
START_TIMEOUT_SECONDS = 60.0
"""A worker added under load that does not answer this soon is stopped (its steps go out)."""

Pending = tuple[StepCall, "asyncio.Future[StepOutcome]"]


class _Worker:
    """One pool actor as the batcher sees it: the steps it has there, since when it is idle."""

    __slots__ = ("actor", "idle_since", "index", "load", "timer")

    def __init__(self, index: int, actor: Any, now: float) -> None:
        self.index, self.actor, self.load, self.idle_since = index, actor, 0, now
        self.timer: asyncio.TimerHandle | None = None


class _Sent:
    """Where a call of a batch went, so its cancel can follow it."""

    __slots__ = ("actor", "batch_id", "index")

    def __init__(self, actor: Any, batch_id: str, index: int) -> None:
        self.actor, self.batch_id, self.index = actor, batch_id, index


class IOBatcher:
    def __init__(self, settings: Settings) -> None:
        ex = settings.execution
        self.settings = settings
        self._size, self._limit = ex.io_pool_size, ex.io_pool_limit
        self._capacity = ex.io_concurrency
        self._workers: list[_Worker] | None = None  # running, in the rotation
        self._starting: set[int] = set()
        self._waiting: list[Pending] = []  # held while a worker starts
        self._drain_soon = False
        self._turn = 0
        self._round: list[Pending] = []
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

    # -- where steps go ----------------------------------------------------------------------
    def _running(self) -> list[_Worker]:
        if self._workers is None:
            now = asyncio.get_running_loop().time()
            self._workers = [_Worker(i, a, now) for i, a in enumerate(io_pool(self.settings))]
            self._adopt()
        return self._workers

    def _adopt(self) -> None:
        """Workers added by an earlier batcher (a runner since restarted): taken back into the
        rotation once they answer, so that they retire when idle."""
        for index in range(self._size, self._limit):
            try:
                ray.get_actor(f"{IO_PREFIX}{index}", namespace=self.settings.ray.namespace)
            except ValueError:
                continue
            self._start(index)

    def _pick(self, steps: int) -> _Worker:
        """The least loaded worker (ties in turn), charged ``steps`` more."""
        workers = self._running()
        n, turn = len(workers), self._turn
        self._turn += 1
        best = min(range(n), key=lambda i: (workers[i].load, (i - turn) % n))
        worker = workers[best]
        worker.load += steps
        return worker

    def _send_round(self) -> None:
        calls = self._round
        self._round = []
        self._dispatch(calls)

    def _dispatch(self, calls: list[Pending]) -> None:
        """Send ``calls`` — after the steps held earlier, which go first."""
        calls = [(call, future) for call, future in self._waiting + calls if not future.done()]
        self._waiting = []
        if not calls:
            return
        try:
            workers = self._running()
        except Exception as exc:  # the pool is not there (yet): these steps fail, not hang
            for _, future in calls:
                future.set_exception(exc)
            return
        self._grow(len(calls))
        if self._starting:  # a worker is on its way: send only what finds a free slot now
            free = sum(max(0, self._capacity - w.load) for w in workers)
            calls, self._waiting = calls[:free], calls[free:]
            if not calls:
                return
        if len(calls) == 1:
            worker = self._pick(1)
            self._track(worker, calls)
            self._spawn(self._single(worker, *calls[0]))
            return
        shares = max(1, min(len(workers), len(calls) // MIN_SHARE))
        for k in range(shares):
            share = calls[k::shares]
            if share:
                worker = self._pick(len(share))
                self._track(worker, share)
                self._spawn(self._batch(worker, share))

    def _track(self, worker: _Worker, sent: list[Pending]) -> None:
        for _, future in sent:
            future.add_done_callback(functools.partial(self._finished, worker))

    def _finished(self, worker: _Worker, _future: object = None) -> None:
        worker.load -= 1
        if not worker.load:
            self._idle(worker)
        self._drain_later()  # a slot is free: a held step takes it now, not when all are

    def _idle(self, worker: _Worker) -> None:
        """``worker`` has no step of ours from now: an added one retires if it stays so."""
        loop = asyncio.get_running_loop()
        worker.idle_since = loop.time()
        if worker.index >= self._size:
            if worker.timer is not None:
                worker.timer.cancel()
            idle = self.settings.execution.io_idle_seconds
            worker.timer = loop.call_later(idle, self._retire_if_idle, worker)

    def _drain_later(self) -> None:
        """Send the waiting steps on the next turn of the loop (once however often asked)."""
        if self._waiting and not self._drain_soon:
            self._drain_soon = True
            asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_soon = False
        self._dispatch([])

    # -- growing and shrinking ----------------------------------------------------------------
    def _grow(self, incoming: int) -> None:
        """Start workers while the steps in flight, waiting and ``incoming`` reach
        ``io_grow_at`` of what the workers running and starting take (up to the limit)."""
        workers = self._running()
        demand = sum(w.load for w in workers) + len(self._waiting) + incoming
        count = len(workers) + len(self._starting)
        grow_at = self.settings.execution.io_grow_at
        while count < self._limit and demand >= grow_at * count * self._capacity:
            taken = {w.index for w in workers} | self._starting
            index = next(i for i in range(self._limit) if i not in taken)
            self._start(index)
            count += 1

    def _start(self, index: int) -> None:
        self._starting.add(index)
        self._spawn(self._started(index))

    async def _started(self, index: int) -> None:
        """Create (or find) ``linqra-io-<index>`` and put it in the rotation once it answers;
        a name still held by a worker that is exiting is tried again."""
        try:
            for attempt in range(3):
                actor = start_io_worker(self.settings, index)
                try:
                    await asyncio.wait_for(actor.ping.remote(), START_TIMEOUT_SECONDS)
                except RayActorError:
                    await asyncio.sleep(0.5 * (attempt + 1))
                    continue
                except TimeoutError:
                    ray.kill(actor)
                    break
                worker = _Worker(index, actor, asyncio.get_running_loop().time())
                self._running().append(worker)
                self._idle(worker)
                log.info("I/O pool: %s%d started", IO_PREFIX, index)
                return
            log.warning("I/O pool: %s%d did not start", IO_PREFIX, index)
        except Exception:
            log.warning("I/O pool: starting %s%d failed", IO_PREFIX, index, exc_info=True)
        finally:
            self._starting.discard(index)
            self._drain_later()

    def _retire_if_idle(self, worker: _Worker) -> None:
        workers = self._running()
        idle = asyncio.get_running_loop().time() - worker.idle_since
        if worker.load or worker not in workers or idle < self.settings.execution.io_idle_seconds:
            return
        workers.remove(worker)  # nothing new goes there from now on
        self._spawn(self._retire(worker))

    async def _retire(self, worker: _Worker) -> None:
        try:
            retired = await worker.actor.retire.remote()
        except RayActorError:  # it exited before its answer went out
            retired = True
        except Exception:
            log.warning("I/O pool: retiring %s%d failed", IO_PREFIX, worker.index, exc_info=True)
            retired = False
        if retired:
            log.info("I/O pool shrank: %s%d idle, stopped", IO_PREFIX, worker.index)
        else:  # it runs someone else's steps: keep it, and try again when idle
            self._running().append(worker)
            self._idle(worker)

    # -- sending -------------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._consumers.add(task)
        task.add_done_callback(self._consumers.discard)

    def _retired(self, worker: _Worker) -> bool:
        """Whether ``worker``, which just failed a call, is an added worker that exited when
        idle (its name released or taken by a new actor): then no step of that call ran there
        (it exits only with none running or arrived), and they go to another worker. Any other
        death — a lost node, a crash — fails its steps, as before."""
        if worker.index < self._size:
            return False
        try:
            now = ray.get_actor(f"{IO_PREFIX}{worker.index}", namespace=self.settings.ray.namespace)
        except ValueError:
            now = None
        if now is not None and now == worker.actor:  # restarted by Ray: not a retirement
            return False
        with contextlib.suppress(ValueError):
            self._running().remove(worker)
        return True

    async def _single(
        self, worker: _Worker, call: StepCall, future: asyncio.Future[StepOutcome]
    ) -> None:
        ref = worker.actor.execute.remote(call)
        waiter = asyncio.ensure_future(ref)
        future.add_done_callback(lambda f: f.cancelled() and ray.cancel(ref))
        try:
            outcome = await waiter
        except RayActorError as exc:
            if self._retired(worker):
                self._dispatch([(call, future)])
            elif not future.done():
                future.set_exception(exc)
            return
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(outcome)

    async def _batch(self, worker: _Worker, share: list[Pending]) -> None:
        actor = worker.actor
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
            if isinstance(exc, RayActorError) and self._retired(worker):
                self._dispatch(share)  # none of them ran: to another worker
                return
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
