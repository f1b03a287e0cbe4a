"""Redis Streams: a topic is a stream, a group a consumer group (``XREADGROUP``/``XACK``).

An event fetched and not acknowledged stays in the group's pending list; once it has been
idle ``redeliver_after`` seconds (its consumer died or hangs) the next ``fetch`` of any consumer
of the group claims it (``XAUTOCLAIM``). Streams are capped at ``max_length`` entries
(approximate trimming).

An outage is an error, not a wait: every call is bounded by ``timeout_seconds``
(plus the fetch's own blocking time) and Redis' connection errors and timeouts become
:class:`~linqra.errors.StoreError` (503) whose message never carries the URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from linqra.events.base import Delivery, Event, check_topic, event_from_json, new_event
from linqra.store.base import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    unavailable,
)

__all__ = ["RedisEventBus"]

log = logging.getLogger(__name__)


def _event(topic: str, fields: Mapping[Any, Any]) -> Event:
    raw = fields[b"event"] if b"event" in fields else fields["event"]
    return event_from_json(topic, json.loads(raw))


class RedisEventBus:
    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        redeliver_after: float = 30.0,
        max_length: int = 1_000_000,
        prefix: str = "linqra:events:",
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        max_connections: int = 64,
    ) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.timeout = timeout_seconds
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,  # a blocked subscription read holds one
            timeout=timeout_seconds,  # a call waits this long for a free one, then fails
            socket_connect_timeout=min(connect_timeout_seconds, timeout_seconds),
            retry=Retry(NoBackoff(), 1),  # one quick retry (a dropped idle connection)
        )
        self.redis = Redis.from_pool(pool)  # closing the client closes its pool
        self.redeliver_after = redeliver_after
        self.max_length = max_length
        self.prefix = prefix

    def _stream(self, topic: str) -> str:
        return self.prefix + topic

    @asynccontextmanager
    async def guard(self, what: str, extra_seconds: float = 0.0) -> AsyncIterator[None]:
        """Bound one call in time; Redis outages become StoreError."""
        from redis import exceptions as redis_errors

        try:
            async with asyncio.timeout(self.timeout + extra_seconds):  # builtin TimeoutError
                yield
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            log.warning("redis event bus %s failed: %s: %s", what, type(exc).__name__, exc)
            raise unavailable(
                f"the event bus is unreachable ({what}: Redis {type(exc).__name__})"
            ) from None

    async def publish(
        self,
        topic: str,
        payload: Mapping[str, Any],
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Event:
        event, body = new_event(topic, payload, key, idempotency_key, headers)
        async with self.guard("publish"):
            await self.redis.xadd(
                self._stream(topic), {"event": body}, maxlen=self.max_length, approximate=True
            )
        return event

    async def subscribe(self, topic: str, group: str, consumer: str) -> _RedisSubscription:
        from redis.exceptions import ResponseError

        check_topic(topic)
        try:  # a new group reads the stream from its start
            async with self.guard("subscribe"):
                await self.redis.xgroup_create(self._stream(topic), group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        return _RedisSubscription(self, topic, group, consumer)

    async def close(self) -> None:
        await self.redis.aclose()


class _RedisSubscription:
    def __init__(self, bus: RedisEventBus, topic: str, group: str, consumer: str) -> None:
        self.bus, self.topic, self.group, self.consumer = bus, topic, group, consumer
        self.stream = bus._stream(topic)

    async def _claim(self, count: int) -> list[Delivery]:
        idle_ms = int(self.bus.redeliver_after * 1000)
        async with self.bus.guard("fetch"):
            return await self._claim_bounded(idle_ms, count)

    async def _claim_bounded(self, idle_ms: int, count: int) -> list[Delivery]:
        result = await self.bus.redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=idle_ms,
            start_id="0-0",
            count=count,
        )
        messages = [m for m in result[1] if m and m[1]]
        if not messages:
            return []
        ids = [m[0] for m in messages]
        details = await self.bus.redis.xpending_range(
            self.stream, self.group, min=min(ids), max=max(ids), count=len(ids) * 4
        )
        times = {d["message_id"]: int(d["times_delivered"]) for d in details}
        return [
            Delivery(_event(self.topic, fields), mid, times.get(mid, 2)) for mid, fields in messages
        ]

    async def fetch(self, max_events: int = 100, timeout: float = 1.0) -> list[Delivery]:
        claimed = await self._claim(max_events)
        if claimed:
            return claimed
        async with self.bus.guard("fetch", extra_seconds=timeout):
            result: Any = await self.bus.redis.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: ">"},
                count=max_events,
                block=max(1, int(timeout * 1000)),
            )
        out: list[Delivery] = []
        for _stream, messages in result or []:
            out += [Delivery(_event(self.topic, fields), mid, 1) for mid, fields in messages]
        return out

    async def ack(self, delivery: Delivery) -> None:
        async with self.bus.guard("ack"):
            await self.bus.redis.xack(self.stream, self.group, delivery.token)

    async def close(self) -> None:
        # Redis cannot hand pending entries back: they are claimed by the group's other
        # consumers once idle for ``redeliver_after``.
        await asyncio.sleep(0)
