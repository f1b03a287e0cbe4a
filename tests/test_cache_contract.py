"""One contract suite for the cache port: in-process and a real redis-server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from linqra.cache import Cache, open_cache
from linqra.errors import StoreError
from tests.support.servers import free_port


class CacheContract:
    async def test_set_get_delete(self, cache: Cache) -> None:
        assert await cache.get("k") is None
        await cache.set("k", b"v1", 10)
        assert await cache.get("k") == b"v1"
        await cache.set("k", b"v2", 10)
        assert await cache.get("k") == b"v2"
        assert await cache.delete("k") is True
        assert await cache.delete("k") is False
        assert await cache.get("k") is None

    async def test_ttl_expires(self, cache: Cache) -> None:
        await cache.set("short", b"x", 0.2)
        assert await cache.get("short") == b"x"
        await asyncio.sleep(0.35)
        assert await cache.get("short") is None

    async def test_ttl_must_be_positive(self, cache: Cache) -> None:
        with pytest.raises(ValueError):
            await cache.set("k", b"x", 0)

    async def test_incr_is_atomic_and_keeps_first_ttl(self, cache: Cache) -> None:
        results = await asyncio.gather(*(cache.incr("n", 1, ttl_seconds=0.5) for _ in range(50)))
        assert sorted(results) == list(range(1, 51))
        assert await cache.incr("n", 5) == 55
        await asyncio.sleep(0.7)
        assert await cache.get("n") is None

    async def test_check_passes_on_a_healthy_cache(self, cache: Cache) -> None:
        await cache.check(5)


class TestMemoryCache(CacheContract):
    @pytest.fixture
    async def cache(self) -> AsyncIterator[Cache]:
        cache = open_cache("memory://")
        yield cache
        await cache.close()


class TestRedisCache(CacheContract):
    @pytest.fixture
    async def cache(self, redis_url: str) -> AsyncIterator[Cache]:
        cache = open_cache(redis_url)
        prefixed = _Prefixed(cache, uuid.uuid4().hex)
        yield prefixed  # type: ignore[misc]
        await cache.close()


class _Prefixed:
    """Keeps tests apart on one shared redis-server."""

    def __init__(self, inner: Cache, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    async def get(self, key: str) -> bytes | None:
        return await self.inner.get(f"{self.prefix}:{key}")

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        await self.inner.set(f"{self.prefix}:{key}", value, ttl_seconds)

    async def delete(self, key: str) -> bool:
        return await self.inner.delete(f"{self.prefix}:{key}")

    async def incr(self, key: str, amount: int = 1, ttl_seconds: float | None = None) -> int:
        return await self.inner.incr(f"{self.prefix}:{key}", amount, ttl_seconds)

    async def check(self, timeout: float) -> None:
        await self.inner.check(timeout)


async def test_no_redis_server_is_a_store_error_in_seconds_without_the_password() -> None:
    cache = open_cache(
        f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0",
        timeout_seconds=2,
        connect_timeout_seconds=0.5,
    )
    try:
        t0 = time.monotonic()
        for call in (cache.get("k"), cache.set("k", b"v", 10), cache.incr("n"), cache.check(1)):
            with pytest.raises(StoreError) as caught:
                await call
            assert caught.value.status == 503 and "s3cret" not in str(caught.value)
        assert time.monotonic() - t0 < 8
    finally:
        await cache.close()
