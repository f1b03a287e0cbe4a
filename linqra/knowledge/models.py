"""Knowledge Hub records as the API returns them, and the collection body it accepts.

Records are what :class:`~linqra.knowledge.service.KnowledgeService` stores; the models name
their fields for clients and keep any other field (``extra="allow"``), so nothing is dropped.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from linqra.status import DocumentStatus
from linqra.vectors import BUILTIN_FIELDS

__all__ = [
    "Collection",
    "CollectionInput",
    "CollectionStats",
    "Document",
    "SearchHit",
    "SearchResults",
    "UploadedDocument",
]

FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RESERVED_FIELDS = frozenset({*BUILTIN_FIELDS, "id", "vector", "text", "team_id", "metadata"})


def _field_name(key: str) -> str:
    if not FIELD_NAME.match(key) or key in RESERVED_FIELDS:
        raise ValueError(
            "a field name is lower-case letters, digits and _ and not one of "
            f"{', '.join(sorted(RESERVED_FIELDS))}"
        )
    return key


FieldName = Annotated[str, AfterValidator(_field_name)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class CollectionInput(BaseModel):
    """The body of ``POST /v1/knowledge/collections``: ``metadata_fields`` maps up to 32
    lower-case names to a type and makes them filterable; ``chunk_tokens`` and ``chunk_overlap``
    default to the settings; ``embedder`` is ``provider:model``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    description: str = Field(default="", max_length=2000)
    embedder: str | None = Field(default=None, description="provider:model; default the setting")
    dimension: int | None = Field(default=None, ge=1, le=32_768)
    metadata_fields: dict[FieldName, Literal["string", "int", "float", "bool"]] = Field(
        default_factory=dict, max_length=32
    )
    chunk_tokens: int | None = Field(default=None, ge=32, le=8000)
    chunk_overlap: int | None = Field(default=None, ge=0)


class Collection(_Record):
    id: str
    name: str
    description: str = ""
    embedder: str
    dimension: int
    metadata_fields: dict[str, str] = Field(default_factory=dict)
    chunk_tokens: int
    chunk_overlap: int
    vector_collection: str = Field(description="its collection in the vector store")
    created_at: str
    updated_at: str | None = None


class CollectionStats(Collection):
    """A collection with its documents counted by status."""

    documents: dict[DocumentStatus, int]


class Document(_Record):
    """A document and its ingestion: ``PENDING → PROCESSING → READY | FAILED``."""

    id: str
    collection_id: str
    title: str | None = None
    file_name: str | None = None
    mime_type: str | None = None
    size: int | None = None
    checksum: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    status: DocumentStatus
    error: str | None = None
    chunks_total: int | None = None
    chunks_done: int | None = None
    pages: int | None = None
    tokens: int | None = None
    attempts: int | None = None
    progress: float | None = Field(default=None, description="chunks done / chunks, 0-1")
    chunks: list[dict[str, Any]] | None = Field(default=None, description="with `chunks=true`")
    created_at: str
    updated_at: str | None = None


class UploadedDocument(Document):
    duplicate: bool = Field(description="the same bytes were uploaded before: the first document")


class SearchHit(_Record):
    """A chunk as a citation."""

    document_id: str | None
    title: str | None = None
    file_name: str | None = None
    page_numbers: list[int] = Field(default_factory=list)
    rank: int
    score: float
    text: str | None = None


class SearchResults(_Record):
    collection: str
    results: list[SearchHit]
