"""The Redis cache adapter (``redis`` asyncio client, blocking connection pool).

An outage is an error, not a wait: connecting gives up after
``connect_timeout_seconds``, every call after ``timeout_seconds``, and Redis'
connection errors and timeouts become :class:`~linqra.errors.StoreError` (503)
whose message never carries the URL. The pool reconnects once the server is back.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from linqra.store.base import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    unavailable,
)

__all__ = ["RedisCache"]

log = logging.getLogger(__name__)

_INCR = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
"""


class RedisCache:
    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 64,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        try:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError as exc:  # pragma: no cover - redis is a core dependency
            raise RuntimeError(
                "the Redis cache needs the redis package: pip install redis"
            ) from exc
        if timeout_seconds <= 0 or connect_timeout_seconds <= 0:
            raise ValueError("cache timeouts must be > 0")
        self.timeout = timeout_seconds
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_seconds,  # waiting for a free connection
            socket_connect_timeout=min(connect_timeout_seconds, timeout_seconds),
            socket_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 1),  # one quick retry (a dropped idle connection), no backoff
        )
        self.pool: Any = pool
        self._redis: Any = aioredis.Redis.from_pool(pool)  # closing the client closes its pool
        self._incr: Any = self._redis.register_script(_INCR)

    @asynccontextmanager
    async def _guard(self, what: str, timeout: float | None = None) -> AsyncIterator[None]:
        from redis import exceptions as redis_errors

        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):  # builtin TimeoutError, an OSError
                yield
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            log.warning("redis cache %s failed: %s: %s", what, type(exc).__name__, exc)
            raise unavailable(
                f"the cache is unreachable ({what}: Redis {type(exc).__name__})"
            ) from None

    async def get(self, key: str) -> bytes | None:
        async with self._guard("get"):
            value = await self._redis.get(key)
        return None if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be > 0")
        async with self._guard("set"):
            await self._redis.set(key, value, px=max(1, math.ceil(ttl_seconds * 1000)))

    async def delete(self, key: str) -> bool:
        async with self._guard("delete"):
            return bool(await self._redis.delete(key))

    async def incr(self, key: str, amount: int = 1, ttl_seconds: float | None = None) -> int:
        ttl_ms = 0 if ttl_seconds is None else max(1, math.ceil(ttl_seconds * 1000))
        async with self._guard("incr"):
            return int(await self._incr(keys=[key], args=[amount, ttl_ms]))

    async def check(self, timeout: float) -> None:
        async with self._guard("health check", timeout):
            await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
