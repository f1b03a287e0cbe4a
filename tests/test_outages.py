"""Backing servers stopped, killed and frozen mid-test: 503 in seconds, never a hang.

Each test starts its own server (redis-server, SecantusDB, tansu), uses the adapter,
takes the server away, asserts that the adapter raises ``StoreError`` (503) within a
bounded time and never leaks its URL, then starts the server again on the same port and
asserts that the adapter recovers without being reopened.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from linqra.cache import open_cache
from linqra.errors import StoreError
from linqra.events.kafka import KafkaEventBus
from linqra.events.redis_streams import RedisEventBus
from linqra.store import open_store
from tests.support.servers import ServerProcess, mongo_process, redis_process, tansu_process

T = TypeVar("T")

TIMEOUT = 2.0  # the adapters' per-call bound in these tests
CONNECT = 0.5
PROMPT = 6.0  # an outage must be reported within this (the bound plus slack for a busy machine)


async def _fails_promptly(call: Awaitable[Any], secret: str = "") -> StoreError:
    t0 = time.monotonic()
    with pytest.raises(StoreError) as caught:
        async with asyncio.timeout(30):  # a hang fails the test instead of blocking the suite
            await call
    elapsed = time.monotonic() - t0
    assert elapsed < PROMPT, f"the outage took {elapsed:.1f}s to be reported"
    err = caught.value
    assert err.status == 503 and err.code == "store_unavailable"
    assert getattr(err, "retry_after", 0) > 0
    if secret:
        assert secret not in str(err)
    return err


async def _recovers(call: Callable[[], Awaitable[T]], deadline: float = 30) -> T:
    """Retry ``call`` until it succeeds (the adapter reconnects by itself); StoreError meanwhile."""
    end = time.monotonic() + deadline
    while True:
        try:
            return await call()
        except StoreError:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.1)


# -- Redis cache ---------------------------------------------------------------------
@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_redis_cache_outage_is_a_prompt_503_and_recovers(how: str) -> None:
    with redis_process() as server:
        url = server.url.replace("redis://", "redis://:pw-secret@")
        server.argv += ["--requirepass", "pw-secret"]
        server.stop()
        server.start()
        cache = open_cache(url, timeout_seconds=TIMEOUT, connect_timeout_seconds=CONNECT)
        try:
            await cache.set("k", b"v", 60)
            assert await cache.get("k") == b"v"
            server.stop(kill=how == "kill")
            await _fails_promptly(cache.get("k"), "pw-secret")
            await _fails_promptly(cache.set("k", b"v2", 60), "pw-secret")
            await _fails_promptly(cache.incr("n"), "pw-secret")
            await _fails_promptly(cache.check(1), "pw-secret")
            server.start()
            await _recovers(lambda: cache.set("k", b"v3", 60))
            assert await cache.get("k") == b"v3"
            await cache.check(2)
        finally:
            await cache.close()


async def test_a_frozen_redis_is_a_503_within_the_timeout_not_a_hang() -> None:
    with redis_process() as server:
        cache = open_cache(server.url, timeout_seconds=TIMEOUT, connect_timeout_seconds=CONNECT)
        try:
            await cache.set("k", b"v", 60)
            server.freeze()
            try:
                await _fails_promptly(cache.get("k"))
                await _fails_promptly(cache.check(1))
            finally:
                server.thaw()
            assert await _recovers(lambda: cache.get("k")) == b"v"
        finally:
            await cache.close()


# -- Redis Streams event bus ---------------------------------------------------------------
async def test_redis_streams_outage_is_a_prompt_503_and_recovers() -> None:
    with redis_process() as server:
        bus = RedisEventBus(server.url, timeout_seconds=TIMEOUT, connect_timeout_seconds=CONNECT)
        topic = f"outage-{uuid.uuid4().hex[:8]}"
        try:
            sub = await bus.subscribe(topic, "g", "c1")
            await bus.publish(topic, {"n": 1})
            got = await sub.fetch(10, timeout=1)
            assert [d.event.payload for d in got] == [{"n": 1}]
            server.stop()
            await _fails_promptly(bus.publish(topic, {"n": 2}))
            await _fails_promptly(sub.fetch(10, timeout=0.5))
            await _fails_promptly(sub.ack(got[0]))
            server.start()  # no persistence: the stream and group are gone
            sub = await _recovers(lambda: bus.subscribe(topic, "g", "c1"))
            await bus.publish(topic, {"n": 3})
            got = await sub.fetch(10, timeout=1)
            assert [d.event.payload for d in got] == [{"n": 3}]
        finally:
            await bus.close()


# -- Kafka event bus -------------------------------------------------------------------
async def test_kafka_outage_is_a_prompt_503_and_recovers() -> None:
    with tansu_process() as server:
        bus = KafkaEventBus(server.url, session_timeout_ms=2000, timeout_seconds=TIMEOUT)
        topic = f"outage-{uuid.uuid4().hex[:8]}"
        try:
            # set-up, not the subject: a fresh broker creating its first topic on a loaded
            # machine may take longer than the per-call bound
            await _recovers(lambda: bus.publish(topic, {"n": 1}))
            server.stop(kill=True)
            await _fails_promptly(bus.publish(topic, {"n": 2}))
            server.start()  # in memory: the restarted broker knows no topic, so use a new one
            topic = f"after-{uuid.uuid4().hex[:8]}"
            await _recovers(lambda: bus.publish(topic, {"n": 3}))
            sub = await bus.subscribe(topic, "g", "c1")
            try:
                payloads: list[Any] = []
                end = time.monotonic() + 20
                while {"n": 3} not in payloads and time.monotonic() < end:
                    payloads += [d.event.payload for d in await sub.fetch(10, timeout=0.5)]
                assert {"n": 3} in payloads
            finally:
                await sub.close()
        finally:
            await bus.close()


# -- MongoDB document store ------------------------------------------------------------------
async def _mongo_outage(server: ServerProcess, stop: Callable[[], None]) -> None:
    store = open_store(server.url, timeout_seconds=TIMEOUT, connect_timeout_seconds=CONNECT)
    try:
        await store.insert("things", "t1", {"id": "before", "n": 1})
        stop()
        await _fails_promptly(store.insert("things", "t1", {"id": "during"}))
        await _fails_promptly(store.get("things", "t1", "before"))
        await _fails_promptly(store.find("things", "t1"))
        await _fails_promptly(store.update("things", "t1", "before", {"n": 2}))
        await _fails_promptly(store.check(1))
        if server.proc is None:
            server.start()
        else:
            server.thaw()
        await _recovers(lambda: store.check(2))
        before = await store.get("things", "t1", "before")
        # a frozen server may still apply what it had received: written whole or not at all
        assert before is not None and before["n"] in (1, 2)
        await store.insert("things", "t1", {"id": "after"})
        assert await store.count("things", "t1") >= 2
    finally:
        await store.close()


async def test_mongodb_stopped_is_a_prompt_503_and_recovers(tmp_path: Path) -> None:
    with mongo_process(tmp_path / "data") as server:
        await _mongo_outage(server, server.stop)


async def test_a_frozen_mongodb_is_a_503_within_the_timeout_not_a_hang(tmp_path: Path) -> None:
    with mongo_process(tmp_path / "data") as server:
        await _mongo_outage(server, server.freeze)


async def test_a_replica_set_primary_stepping_down_is_a_prompt_503_and_recovers(
    tmp_path: Path,
) -> None:
    """Production runs MongoDB as a replica set (issue 17, part 5; docs/operations.md,
    "Production topology"): the store connects by a replica-set URI — SecantusDB answers as a
    one-node set named ``secantus``, as a real ``mongod --replSet`` does — and while its primary
    steps down (``replSetStepDown``, what an election looks like to a client) a write or a read
    from the primary is a prompt 503 (the gateway's ``Retry-After``); the same client writes
    again once a primary is back, without being reopened."""
    import pymongo

    with mongo_process(tmp_path / "data") as server:
        url = f"{server.url}?replicaSet=secantus"
        store = open_store(url, timeout_seconds=TIMEOUT, connect_timeout_seconds=CONNECT)
        admin: Any = pymongo.MongoClient(server.url, directConnection=True)
        try:
            await store.insert("things", "t1", {"id": "before", "n": 1})
            assert admin.admin.command("hello")["setName"] == "secantus"
            # a window longer than the two prompt failures below take, even on a busy machine
            admin.admin.command({"replSetStepDown": 8, "force": True})
            await _fails_promptly(store.update("things", "t1", "before", {"n": 2}))
            await _fails_promptly(store.get("things", "t1", "before"))
            # an insert that timed out may still have landed (its outcome is unknown to the
            # client), so each try writes a new id: the same one again would be a 409 Conflict
            tries = iter(range(1000))
            await _recovers(lambda: store.insert("things", "t1", {"id": f"after-{next(tries)}"}))
            assert await store.update("things", "t1", "before", {"n": 3})
            assert (await store.get("things", "t1", "before"))["n"] == 3
        finally:
            admin.close()
            await store.close()
