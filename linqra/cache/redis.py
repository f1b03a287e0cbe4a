"""The Redis cache adapter (``redis`` asyncio client, blocking connection pool)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["RedisCache"]

_INCR = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
"""


class RedisCache:
    def __init__(self, url: str, *, max_connections: int = 64, timeout: float = 5.0) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - redis is a core dependency
            raise RuntimeError(
                "the Redis cache needs the redis package: pip install redis"
            ) from exc
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout
        )
        self._redis: Any = aioredis.Redis(connection_pool=pool)
        self._incr: Any = self._redis.register_script(_INCR)

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(key)
        return None if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be > 0")
        await self._redis.set(key, value, px=max(1, math.ceil(ttl_seconds * 1000)))

    async def delete(self, key: str) -> bool:
        return bool(await self._redis.delete(key))

    async def incr(self, key: str, amount: int = 1, ttl_seconds: float | None = None) -> int:
        ttl_ms = 0 if ttl_seconds is None else max(1, math.ceil(ttl_seconds * 1000))
        return int(await self._incr(keys=[key], args=[amount, ttl_ms]))

    async def close(self) -> None:
        await self._redis.aclose()
