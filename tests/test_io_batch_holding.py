"""The I/O batcher's held steps (actors/io_batch.py), in process over stand-in pool actors:
while an added worker starts, the steps that find no free slot wait, and each goes out as soon
as any slot frees — in the order they came — not only once a worker has nothing left to do.
Ray itself is not the subject here (tests/test_io_pool_growth.py grows a real pool)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import ray

import actors.io_batch as io_batch
from linqra.clock import iso
from linqra.config import Settings
from linqra.status import StepStatus
from linqra.steps.base import StepCall
from linqra.steps.runtime import StepOutcome


class _Method:
    def __init__(self, fn: Any) -> None:
        self.remote = fn


class _Streaming(_Method):
    def options(self, **_: Any) -> _Method:  # num_returns="streaming"
        return self


async def _value(value: Any) -> Any:
    return value


class FakeWorker:
    """A pool actor: each step (``execute``, or one of an ``execute_batch``) waits until the
    test finishes it; a batch streams its outcomes as they come, as the real one does."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.running: dict[int, asyncio.Future[StepOutcome]] = {}
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.execute = _Method(self._execute)
        self.execute_batch = _Streaming(self._execute_batch)
        self.ping = _Method(lambda: self.started)

    def _execute(self, call: StepCall) -> asyncio.Future[StepOutcome]:
        done = asyncio.get_running_loop().create_future()
        self.running[call.step] = done
        return done

    def _execute_batch(self, batch_id: str, calls: list[StepCall]) -> AsyncIterator[Any]:
        futures = {self._execute(call): index for index, call in enumerate(calls)}

        async def stream() -> AsyncIterator[Any]:
            while futures:
                done, _ = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
                yield _value([(futures.pop(f), f.result(), None) for f in done])

        return stream()

    def finish(self, step: int) -> None:
        now = iso()
        self.running.pop(step).set_result(
            StepOutcome(StepStatus.COMPLETED, {"step": step}, None, 1, now, now, 0.0)
        )


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[int, FakeWorker]]:
    workers: dict[int, FakeWorker] = {}

    def get_actor(name: str, namespace: str) -> Any:
        raise ValueError(name)  # no worker left by an earlier runner

    def start_io_worker(settings: Settings, index: int) -> FakeWorker:
        return workers.setdefault(index, FakeWorker(f"io-{index}"))

    monkeypatch.setattr(ray, "get_actor", get_actor)
    monkeypatch.setattr(io_batch, "io_pool", lambda settings: [workers[0]])
    monkeypatch.setattr(io_batch, "start_io_worker", start_io_worker)
    yield workers


def _call(step: int) -> StepCall:
    return StepCall("ex", "team", step, "wait", None, None, {}, None, {}, None, False, "io",
                    10.0, 1, 0.1, 1.0, 2.0)  # fmt: skip


async def test_a_held_step_takes_the_first_free_slot_in_its_turn(
    pool: dict[int, FakeWorker],
) -> None:
    pool[0] = FakeWorker("io-0")
    pool[0].started.set_result(None)
    execution = Settings().execution.model_copy(
        update={"io_pool_size": 1, "io_concurrency": 2, "io_pool_max": 2, "io_grow_at": 1.0}
    )
    batcher = io_batch.IOBatcher(Settings().model_copy(update={"execution": execution}))

    async def send(steps: list[int]) -> list[asyncio.Future[StepOutcome]]:
        tasks: list[asyncio.Future[StepOutcome]] = [
            asyncio.ensure_future(batcher.execute(_call(n))) for n in steps
        ]
        for _ in range(5):  # the round goes out on the loop's next turns
            await asyncio.sleep(0)
        return tasks

    first = await send([1, 2])  # worker 0 full; a second worker starts (it does not answer yet)
    assert sorted(pool[0].running) == [1, 2] and 1 in pool
    held = await send([3, 4])
    later = await send([5])
    assert sorted(pool[0].running) == [1, 2]  # no free slot: 3, 4 and 5 wait
    pool[0].finish(1)  # one slot frees while 2 still runs
    await first[0]
    for _ in range(5):
        await asyncio.sleep(0)
    assert sorted(pool[0].running) == [2, 3]  # the oldest held step took it, at once
    pool[1].started.set_result(None)  # the added worker answers: the rest go to it, in order
    for _ in range(10):
        await asyncio.sleep(0)
    assert list(pool[1].running) == [4, 5]
    for worker, step in ((pool[0], 2), (pool[0], 3), (pool[1], 4), (pool[1], 5)):
        worker.finish(step)
    outcomes = await asyncio.gather(*first, *held, *later)
    assert [o.output["step"] for o in outcomes] == [1, 2, 3, 4, 5]
