"""Cache port, its adapters, and ``open_cache(url)``."""

from __future__ import annotations

from collections.abc import Callable

from linqra.cache.base import Cache

__all__ = ["Cache", "open_cache"]


def _memory(url: str) -> Cache:
    from linqra.cache.memory import MemoryCache

    return MemoryCache()


def _redis(url: str) -> Cache:
    from linqra.cache.redis import RedisCache

    return RedisCache(url)


_ADAPTERS: dict[str, Callable[[str], Cache]] = {
    "memory": _memory,
    "redis": _redis,
    "rediss": _redis,
}


def open_cache(url: str) -> Cache:
    """The cache for ``url`` (``memory://`` or ``redis://HOST:PORT/DB``)."""
    scheme = url.split(":", 1)[0]
    try:
        factory = _ADAPTERS[scheme]
    except KeyError:
        raise ValueError(
            f"no cache for {scheme!r}; known: {', '.join(sorted(_ADAPTERS))}"
        ) from None
    return factory(url)
