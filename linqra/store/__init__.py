"""Document store port, its adapters, and ``open_store(url)``."""

from __future__ import annotations

from collections.abc import Callable

from linqra.store.base import Document, DocumentStore, Filter, IndexSpec, Sort

__all__ = ["Document", "DocumentStore", "Filter", "IndexSpec", "Sort", "open_store"]


def _sqlite(url: str) -> DocumentStore:
    from linqra.store.sqlite import SQLiteStore

    return SQLiteStore.from_url(url)


def _mongo(url: str) -> DocumentStore:
    from linqra.store.mongo import MongoStore

    return MongoStore.from_url(url)


_ADAPTERS: dict[str, Callable[[str], DocumentStore]] = {
    "sqlite": _sqlite,
    "mongodb": _mongo,
    "mongodb+srv": _mongo,
}


def open_store(url: str) -> DocumentStore:
    """The document store for ``url`` (``sqlite:///PATH``, ``mongodb://HOST:PORT/DB``)."""
    scheme = url.split(":", 1)[0]
    try:
        factory = _ADAPTERS[scheme]
    except KeyError:
        raise ValueError(
            f"no document store for {scheme!r}; known: {', '.join(sorted(_ADAPTERS))}"
        ) from None
    return factory(url)
