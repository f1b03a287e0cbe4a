"""The vector store port: chunks and their vectors in named collections, every row scoped to a
team (:class:`VectorStore`, its contract in the docstrings; ``tests/contracts/test_vectors.py``
tests it on every backend), and what its adapters share.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from linqra.errors import Unavailable

__all__ = [
    "BUILTIN_FIELDS",
    "FieldType",
    "VectorHit",
    "VectorStore",
    "VectorStoreError",
    "quote",
    "row_key",
]

FieldType = Literal["string", "int", "float", "bool"]

# filterable fields every chunk has, with their types
BUILTIN_FIELDS: dict[str, FieldType] = {
    "document_id": "string",
    "chunk_index": "int",
    "title": "string",
    "file_name": "string",
    "page_start": "int",
    "page_end": "int",
    "created_at": "int",
}
MAX_TEXT = 65_535
MAX_STRING = 2_048


class VectorStoreError(Unavailable):
    status = 503
    code = "vector_store_unavailable"


@dataclass(frozen=True, slots=True)
class VectorHit:
    id: str
    score: float
    fields: dict[str, Any]


class VectorStore(Protocol):
    """Chunks and their vectors in named collections, every row scoped to a team.

    Team scoping: every row is written with the caller's ``team_id``, and a team's query,
    search, count and delete see and change only its own rows, so a team cannot reach another
    team's vectors even by naming a physical collection. An upsert never replaces another team's
    row, even one with the same ``id``.

    ``expr`` is a Milvus boolean expression over ``id``, the built-in fields
    (:data:`BUILTIN_FIELDS`) and the collection's declared fields; user text reaches it only
    through :func:`linqra.knowledge.filters.compile_filter`. An empty ``expr`` matches all of the
    team's rows.

    A write becomes visible to reads within the backend's bounded staleness (at once on Milvus
    Lite). A backend that cannot be reached, or fails a call, raises :class:`VectorStoreError`
    (503).
    """

    async def create_collection(
        self, name: str, dimension: int, fields: Mapping[str, FieldType]
    ) -> None:
        """Create the collection (idempotent) with the declared scalar fields."""

    async def drop_collection(self, name: str) -> None:
        """Delete the collection with every team's rows; dropping a missing one is a no-op."""

    async def upsert(self, name: str, team_id: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or replace the team's rows by ``id``; each carries ``vector`` and ``text``
        and may carry built-in and declared fields and a ``metadata`` object."""

    async def search(
        self,
        name: str,
        team_id: str,
        vector: Sequence[float],
        *,
        top_k: int,
        expr: str = "",
        output_fields: Sequence[str] = (),
    ) -> list[VectorHit]:
        """The team's ``top_k`` rows matching ``expr`` nearest to ``vector``, nearest first;
        ``score`` is the cosine similarity (1.0 for the same direction), ``fields`` holds the
        ``output_fields``."""

    async def query(
        self,
        name: str,
        team_id: str,
        expr: str = "",
        *,
        output_fields: Sequence[str] = (),
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """The team's rows matching ``expr`` (at most ``limit``), each with ``id`` and the
        ``output_fields``."""

    async def count(self, name: str, team_id: str, expr: str = "") -> int:
        """How many of the team's rows match ``expr``."""

    async def delete(self, name: str, team_id: str, expr: str) -> None:
        """Delete the team's rows matching ``expr``."""

    async def flush(self, name: str) -> None:
        """Seal what was written into indexed segments (after a document's last batch)."""

    async def close(self) -> None: ...


def quote(value: str) -> str:
    """A Milvus string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def row_key(team_id: str, row_id: str) -> str:
    """The stored primary key of the team's row ``row_id`` (64 hex digits)."""
    return hashlib.sha256(f"{team_id}\x00{row_id}".encode()).hexdigest()
