"""The run event log contract (:class:`linqra.assistants.runlog.RunLog`), run on the in-process
log and on Redis Streams (a real redis-server); then what only Redis does: two replicas sharing
runs, and an outage reported as ``StoreError``.

No test sleeps for a fixed time: a test that needs a reader to be blocked waits until it is (the
memory log's waiting readers, Redis' ``CLIENT LIST`` showing an ``XREAD``), with a deadline."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from linqra.assistants.runlog import (
    MemoryRunLog,
    RedisRunLog,
    RunEvent,
    RunLog,
    open_run_log,
)
from linqra.errors import Conflict, StoreError
from tests.support.servers import redis_process

PROMPT = 2.0  # a woken reader returns within this of the append (generous: a busy 2-core box)
MakeLog = Callable[..., RunLog]


def ids() -> tuple[str, str]:
    """A fresh team and run (the Redis server is shared by the session)."""
    return f"team-{uuid.uuid4().hex[:8]}", f"run_{uuid.uuid4().hex}"


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


class RunLogContract:
    """Fixtures: ``make_log(ttl_seconds=…)`` builds a log (closed after the test), and
    ``blocked(log)`` says whether some reader of it is waiting now."""

    async def test_events_are_numbered_from_one_and_read_back_in_order(
        self, make_log: MakeLog
    ) -> None:
        log = make_log()
        team, run = ids()
        sent = [
            await log.append(team, run, "message.delta", {"text": f"part {i}", "n": [i, None]})
            for i in range(1, 4)
        ]
        assert [e.seq for e in sent] == [1, 2, 3]
        assert sent[0].id == f"{run}:1"
        got = await log.read(team, run)
        assert got == sent
        assert got[2] == RunEvent(run, 3, "message.delta", {"text": "part 3", "n": [3, None]})
        assert [e.seq for e in await log.read(team, run, after=1)] == [2, 3]
        assert [e.seq for e in await log.read(team, run, after=1, limit=1)] == [2]
        assert await log.read(team, run, after=3) == []
        assert await log.read(team, "run_other") == []

    async def test_runs_of_different_teams_are_apart(self, make_log: MakeLog) -> None:
        log = make_log()
        team, run = ids()
        await log.append(team, run, "a", {})
        assert (await log.append("team-other", run, "b", {})).seq == 1
        assert [e.event for e in await log.read(team, run)] == ["a"]
        with pytest.raises(ValueError, match="unscoped"):
            await log.read("", run)

    async def test_concurrent_appends_never_share_a_seq(self, make_log: MakeLog) -> None:
        log = make_log()
        team, run = ids()
        sent = await asyncio.gather(*(log.append(team, run, "e", {"i": i}) for i in range(100)))
        assert sorted(e.seq for e in sent) == list(range(1, 101))
        got = await log.read(team, run)
        assert [e.seq for e in got] == list(range(1, 101))
        assert {e.data["i"] for e in got} == set(range(100))
        assert {(e.seq, e.data["i"]) for e in got} == {(e.seq, e.data["i"]) for e in sent}

    async def test_a_waiting_read_wakes_promptly_on_an_append(
        self, make_log: MakeLog, blocked: Callable[[RunLog], Awaitable[bool]]
    ) -> None:
        log = make_log()
        team, run = ids()
        await log.append(team, run, "first", {})
        reader = asyncio.create_task(log.read(team, run, after=1, wait=30))
        await until(lambda: blocked(log))
        assert not reader.done()
        t0 = time.monotonic()
        await log.append(team, run, "second", {"x": 1})
        got = await asyncio.wait_for(reader, 30)
        assert time.monotonic() - t0 < PROMPT
        assert [(e.seq, e.event, e.data) for e in got] == [(2, "second", {"x": 1})]

    async def test_many_readers_wait_at_once_and_all_wake(self, make_log: MakeLog) -> None:
        """One process following 300 streams (a reader per stream, each waiting): none fails,
        each gets its event (redis-py's default pool of 100 connections failed the 101st)."""
        log = make_log()
        team = f"team-{uuid.uuid4().hex[:8]}"
        runs = [f"run_{i}_{uuid.uuid4().hex[:6]}" for i in range(300)]
        readers = [asyncio.ensure_future(log.read(team, run, wait=30)) for run in runs]
        await asyncio.sleep(0)  # let them start waiting
        await asyncio.gather(*(log.append(team, run, "e", {"run": run}) for run in runs))
        got = await asyncio.wait_for(asyncio.gather(*readers), 60)
        assert [events[0].data["run"] for events in got] == runs

    async def test_a_reader_may_start_before_the_first_event(
        self, make_log: MakeLog, blocked: Callable[[RunLog], Awaitable[bool]]
    ) -> None:
        log = make_log()
        team, run = ids()
        reader = asyncio.create_task(log.read(team, run, wait=30))
        await until(lambda: blocked(log))
        await log.append(team, run, "hello", {})
        assert [e.seq for e in await asyncio.wait_for(reader, 30)] == [1]

    async def test_a_wait_without_events_ends_empty_after_the_wait(self, make_log: MakeLog) -> None:
        log = make_log()
        team, run = ids()
        await log.append(team, run, "only", {})
        t0 = time.monotonic()
        assert await log.read(team, run, after=1, wait=0.3) == []
        assert 0.25 <= time.monotonic() - t0 < 0.3 + PROMPT

    async def test_a_finished_run_takes_no_events_and_is_read_at_once(
        self, make_log: MakeLog, blocked: Callable[[RunLog], Awaitable[bool]]
    ) -> None:
        log = make_log()
        team, run = ids()
        await log.append(team, run, "delta", {})
        reader = asyncio.create_task(log.read(team, run, after=1, wait=30))
        await until(lambda: blocked(log))
        assert not await log.is_finished(team, run)
        await log.finish(team, run)
        assert await asyncio.wait_for(reader, PROMPT) == []  # the finish woke it
        await log.finish(team, run)  # idempotent
        assert await log.is_finished(team, run)
        with pytest.raises(Conflict):
            await log.append(team, run, "late", {})
        t0 = time.monotonic()
        assert [e.seq for e in await log.read(team, run, wait=30)] == [1]
        assert await log.read(team, run, after=1, wait=30) == []
        assert await log.read(team, run, after=99, wait=30) == []  # beyond the end: at once too
        assert time.monotonic() - t0 < PROMPT
        _, empty = ids()
        await log.finish(team, empty)  # a run without events can finish
        assert await log.is_finished(team, empty)
        assert await log.read(team, empty, wait=30) == []

    async def test_a_finished_runs_log_is_gone_after_its_ttl(self, make_log: MakeLog) -> None:
        log = make_log(ttl_seconds=0.5)
        team, run = ids()
        await log.append(team, run, "delta", {})
        await log.finish(team, run)
        assert [e.seq for e in await log.read(team, run)] == [1]

        async def gone() -> bool:
            return not await log.read(team, run) and not await log.is_finished(team, run)

        await until(gone)
        assert (await log.append(team, run, "again", {})).seq == 1  # a new log under that id

    async def test_events_must_be_json_objects(self, make_log: MakeLog) -> None:
        log = make_log()
        team, run = ids()
        for bad in ({"x": object()}, {"x": float("nan")}, [1, 2], "text"):
            with pytest.raises(ValueError):
                await log.append(team, run, "e", bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await log.append(team, run, "", {})
        assert await log.read(team, run) == []
        event = await log.append(team, run, "e", {"t": (1, 2), "s": "é ✓"})
        assert event.data == {"t": [1, 2], "s": "é ✓"}  # as JSON gives it back, in every adapter


class TestMemoryRunLog(RunLogContract):
    @pytest.fixture
    async def make_log(self) -> AsyncIterator[MakeLog]:
        made: list[RunLog] = []

        def make(**kwargs: Any) -> RunLog:
            made.append(MemoryRunLog(**kwargs))
            return made[-1]

        yield make
        for log in made:
            await log.close()

    @pytest.fixture
    def blocked(self) -> Callable[[RunLog], Awaitable[bool]]:
        async def probe(log: RunLog) -> bool:
            assert isinstance(log, MemoryRunLog)
            return any(run.readers for run in log._runs.values())

        return probe


class TestRedisRunLog(RunLogContract):
    @pytest.fixture
    async def make_log(self, redis_url: str) -> AsyncIterator[MakeLog]:
        made: list[RunLog] = []

        def make(**kwargs: Any) -> RunLog:
            made.append(open_run_log(redis_url, timeout_seconds=15, **kwargs))
            return made[-1]

        yield make
        for log in made:
            await log.close()

    @pytest.fixture
    def blocked(self) -> Callable[[RunLog], Awaitable[bool]]:
        async def probe(log: RunLog) -> bool:
            assert isinstance(log, RedisRunLog)
            clients = await log.redis.client_list()
            return any(c.get("cmd") == "xread" for c in clients)

        return probe

    async def test_two_replicas_share_runs(self, make_log: MakeLog) -> None:
        one, two = make_log(), make_log()
        team, run = ids()
        reader = asyncio.create_task(two.read(team, run, wait=30))
        await one.append(team, run, "from-one", {"n": 1})
        assert [e.event for e in await asyncio.wait_for(reader, 30)] == ["from-one"]
        sent = await asyncio.gather(
            *(log.append(team, run, "e", {"i": i}) for i in range(50) for log in (one, two))
        )
        assert sorted(e.seq for e in sent) == list(range(2, 102))
        assert [e.seq for e in await one.read(team, run)] == list(range(1, 102))
        await two.finish(team, run)
        assert await one.is_finished(team, run)
        with pytest.raises(Conflict):
            await one.append(team, run, "late", {})


async def test_open_run_log_picks_the_adapter_by_the_cache_url() -> None:
    memory, redis = open_run_log("memory://"), open_run_log("redis://127.0.0.1:1/0")
    assert isinstance(memory, MemoryRunLog) and isinstance(memory, RunLog)
    assert isinstance(redis, RedisRunLog) and isinstance(redis, RunLog)
    await memory.close()
    await redis.close()
    with pytest.raises(ValueError, match="no run log"):
        open_run_log("kafka://x")
    with pytest.raises(ValueError, match="ttl"):
        open_run_log("memory://", ttl_seconds=0)


async def test_a_stopped_redis_is_a_store_error_promptly_and_the_log_recovers() -> None:
    with redis_process() as server:
        url = server.url.replace("redis://", "redis://:pw-secret@")
        server.argv += ["--requirepass", "pw-secret"]
        server.stop()
        server.start()
        log = open_run_log(url, timeout_seconds=2, connect_timeout_seconds=0.5)
        team, run = ids()
        try:
            await log.append(team, run, "before", {})
            reader = asyncio.create_task(log.read(team, run, after=1, wait=30))
            server.stop()
            calls: list[Awaitable[Any]] = [
                reader,
                log.append(team, run, "during", {}),
                log.read(team, run),
                log.finish(team, run),
                log.is_finished(team, run),
            ]
            for call in calls:
                t0 = time.monotonic()
                with pytest.raises(StoreError) as caught:
                    await asyncio.wait_for(call, 30)
                assert time.monotonic() - t0 < 6
                assert caught.value.retry_after and "pw-secret" not in str(caught.value)
            server.start()
            deadline = time.monotonic() + 30
            while True:  # the client reconnects by itself (the restarted server is empty)
                try:
                    event = await log.append(team, run, "after", {})
                    break
                except StoreError:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
            assert event.seq == 1
        finally:
            await log.close()
