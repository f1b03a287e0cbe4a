"""The cache port: bytes under string keys, with a time to live.

Used by the workflow step cache now and rate-limit counters later. Contract:

* ``get`` returns ``None`` for a missing or expired key, never raises for that;
* ``set(key, value, ttl_seconds)`` overwrites; ``ttl_seconds`` must be > 0;
* ``incr(key, amount, ttl_seconds)`` is atomic; a new key starts from 0 and gets
  the TTL, an existing key keeps the TTL it has;
* ``delete`` returns whether the key existed;
* an unreachable or stuck cache server raises :class:`linqra.errors.StoreError` (503)
  within the cache's timeout, never hangs; ``check`` is the health probe.

Keys are namespaced by the caller (``step:{team}:{hash}``); the cache does not
know about teams.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Cache"]


@runtime_checkable
class Cache(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or ``None`` if it is missing or expired."""

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Store ``value`` for ``ttl_seconds``."""

    async def delete(self, key: str) -> bool:
        """Remove ``key``; whether it existed."""

    async def incr(self, key: str, amount: int = 1, ttl_seconds: float | None = None) -> int:
        """Atomically add ``amount`` and return the new value."""

    async def check(self, timeout: float) -> None:
        """Return if the cache answered within ``timeout`` seconds, else raise StoreError."""

    async def close(self) -> None:
        """Release connections."""
