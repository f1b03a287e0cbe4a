"""The embedded default cache: a dict in this process, with lazy expiry.

In-process means per process: under Ray, the workflow runner actor owns the
step cache, so all its executions share one. Use Redis when several
processes must share entries.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["MemoryCache"]


class MemoryCache:
    def __init__(self, *, max_entries: int = 100_000) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._max = max_entries
        self._lock = asyncio.Lock()

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= time.monotonic():
            del self._data[key]
            return None
        return entry

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key)
        return None if entry is None else entry[0]

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be > 0")
        if len(self._data) >= self._max and key not in self._data:
            self._evict()
        self._data[key] = (bytes(value), time.monotonic() + ttl_seconds)

    async def delete(self, key: str) -> bool:
        return self._live(key) is not None and self._data.pop(key, None) is not None

    async def incr(self, key: str, amount: int = 1, ttl_seconds: float | None = None) -> int:
        async with self._lock:
            entry = self._live(key)
            if entry is None:
                expiry = None if ttl_seconds is None else time.monotonic() + ttl_seconds
                value = amount
            else:
                expiry = entry[1]
                value = int(entry[0]) + amount
            self._data[key] = (str(value).encode(), expiry)
            return value

    def _evict(self) -> None:
        now = time.monotonic()
        for k in [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]:
            del self._data[k]
        while len(self._data) >= self._max:
            self._data.pop(next(iter(self._data)))

    async def check(self, timeout: float) -> None:
        return None  # in this process: always there

    async def close(self) -> None:
        self._data.clear()
