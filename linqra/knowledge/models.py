"""Knowledge Hub records as the API returns them, and the collection body it accepts.

Records are what :class:`~linqra.knowledge.service.KnowledgeService` stores; the models name
their fields for clients and keep any other field (``extra="allow"``), so nothing is dropped.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from linqra.status import DocumentStatus

__all__ = [
    "Collection",
    "CollectionInput",
    "CollectionStats",
    "Document",
    "SearchHit",
    "SearchResults",
    "UploadedDocument",
]


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class CollectionInput(BaseModel):
    """The body of ``POST /v1/knowledge/collections``; checked by the service (400 naming the
    field): ``metadata_fields`` maps up to 32 lower-case names to a type and makes them
    filterable."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    description: str = Field(default="", max_length=2000)
    embedder: str | None = Field(default=None, description="provider:model; default the setting")
    dimension: int | None = None
    metadata_fields: dict[str, Literal["string", "int", "float", "bool"]] = Field(
        default_factory=dict
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
