"""Cache port, its adapters, and ``open_cache(url)``."""

from __future__ import annotations

from collections.abc import Callable

from linqra.cache.base import Cache
from linqra.store.base import DEFAULT_CONNECT_TIMEOUT_SECONDS, DEFAULT_TIMEOUT_SECONDS

__all__ = ["DEFAULT_MAX_CONNECTIONS", "Cache", "open_cache"]

DEFAULT_MAX_CONNECTIONS = 64


def _memory(url: str, timeout: float, connect_timeout: float, max_connections: int) -> Cache:
    from linqra.cache.memory import MemoryCache

    return MemoryCache()


def _redis(url: str, timeout: float, connect_timeout: float, max_connections: int) -> Cache:
    from linqra.cache.redis import RedisCache

    return RedisCache(
        url,
        max_connections=max_connections,
        timeout_seconds=timeout,
        connect_timeout_seconds=connect_timeout,
    )


_ADAPTERS: dict[str, Callable[[str, float, float, int], Cache]] = {
    "memory": _memory,
    "redis": _redis,
    "rediss": _redis,
}


def open_cache(
    url: str,
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> Cache:
    """The cache for ``url`` (``memory://`` or ``redis://HOST:PORT/DB``).

    A server-backed cache bounds every call by ``timeout_seconds`` (settings
    ``store_timeout_seconds`` and ``store_connect_timeout_seconds``) and opens at most
    ``max_connections`` in this process (``connections.redis.max_connections``).
    """
    scheme = url.split(":", 1)[0]
    try:
        factory = _ADAPTERS[scheme]
    except KeyError:
        raise ValueError(
            f"no cache for {scheme!r}; known: {', '.join(sorted(_ADAPTERS))}"
        ) from None
    return factory(url, timeout_seconds, connect_timeout_seconds, max_connections)
