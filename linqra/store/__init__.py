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


def _sqlite(url: str, timeout: float, connect_timeout: float) -> DocumentStore:
    from linqra.store.sqlite import SQLiteStore

    return SQLiteStore.from_url(url, timeout_seconds=timeout)


def _mongo(url: str, timeout: float, connect_timeout: float) -> DocumentStore:
    from linqra.store.mongo import MongoStore

    return MongoStore.from_url(
        url, timeout_seconds=timeout, connect_timeout_seconds=connect_timeout
    )


_ADAPTERS: dict[str, Callable[[str, float, float], DocumentStore]] = {
    "sqlite": _sqlite,
    "mongodb": _mongo,
    "mongodb+srv": _mongo,
}


def open_store(
    url: str,
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
) -> DocumentStore:
    """The document store for ``url`` (``sqlite:///PATH``, ``mongodb://HOST:PORT/DB``).

    Every call of the store ends within ``timeout_seconds`` (``StoreError`` after it);
    finding a server gives up after ``connect_timeout_seconds``. Settings:
    ``store_timeout_seconds`` and ``store_connect_timeout_seconds``.
    """
    scheme = url.split(":", 1)[0]
    try:
        factory = _ADAPTERS[scheme]
    except KeyError:
        raise ValueError(
            f"no document store for {scheme!r}; known: {', '.join(sorted(_ADAPTERS))}"
        ) from None
    return factory(url, timeout_seconds, connect_timeout_seconds)
