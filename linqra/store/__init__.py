"""Document store port, its adapters, and ``open_store(url)``."""

from __future__ import annotations

from collections.abc import Callable

from linqra.store.base import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    Document,
    DocumentStore,
    Filter,
    IndexSpec,
    Sort,
    get_scoped,
    scoped_id,
)

__all__ = [
    "Document",
    "DocumentStore",
    "Filter",
    "IndexSpec",
    "Sort",
    "get_scoped",
    "open_store",
    "scoped_id",
]


def _sqlite(url: str, timeout: float, connect_timeout: float, pool: PoolSize) -> DocumentStore:
    from linqra.store.sqlite import SQLiteStore  # one writer thread per process: no pool

    return SQLiteStore.from_url(url, timeout_seconds=timeout)


def _mongo(url: str, timeout: float, connect_timeout: float, pool: PoolSize) -> DocumentStore:
    from linqra.store.mongo import MongoStore

    return MongoStore.from_url(
        url,
        timeout_seconds=timeout,
        connect_timeout_seconds=connect_timeout,
        max_pool_size=pool[0],
        min_pool_size=pool[1],
    )


PoolSize = tuple[int | None, int | None]
"""Most and fewest connections a store's client keeps per server (``None``: its default)."""

_ADAPTERS: dict[str, Callable[[str, float, float, PoolSize], DocumentStore]] = {
    "sqlite": _sqlite,
    "mongodb": _mongo,
    "mongodb+srv": _mongo,
}


def open_store(
    url: str,
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    max_pool_size: int | None = None,
    min_pool_size: int | None = None,
) -> DocumentStore:
    """The document store for ``url`` (``sqlite:///PATH``, ``mongodb://HOST:PORT/DB``).

    Every call of the store ends within ``timeout_seconds`` (``StoreError`` after it);
    finding a server gives up after ``connect_timeout_seconds``. Settings:
    ``store_timeout_seconds`` and ``store_connect_timeout_seconds``. A server's client keeps
    at most ``max_pool_size`` and at least ``min_pool_size`` connections open in this process
    (``connections.mongodb``; ``None``: the URL's or the driver's default).
    """
    scheme = url.split(":", 1)[0]
    try:
        factory = _ADAPTERS[scheme]
    except KeyError:
        raise ValueError(
            f"no document store for {scheme!r}; known: {', '.join(sorted(_ADAPTERS))}"
        ) from None
    return factory(url, timeout_seconds, connect_timeout_seconds, (max_pool_size, min_pool_size))
