"""Knowledge collections: making, finding, describing and deleting them.

A part of :class:`~linqra.knowledge.service.KnowledgeService`, which is split by what a newcomer
looks for: collections (this module), documents (:mod:`linqra.knowledge.documents`), ingestion
(:mod:`linqra.knowledge.ingestion`) and retrieval (:mod:`linqra.knowledge.retrieval`). Each part
is a base class of ``KnowledgeService``; the service's ``__init__`` sets the state declared here.

A collection is a record in ``knowledge_collections`` and one vector collection, made first, so
no record ever points at nothing. Its name is unique per team; its metadata fields become scalar
fields of the vector collection that search filters can use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from linqra.clock import iso, new_id
from linqra.config import KnowledgeSettings, Settings
from linqra.errors import Conflict, NotFound, ValidationError
from linqra.jobs import JobKind, Jobs
from linqra.knowledge.blobs import BlobStore
from linqra.llm.service import LLMService
from linqra.status import DOCUMENT_TERMINAL, DocumentStatus
from linqra.store import DocumentStore
from linqra.vectors import BUILTIN_FIELDS, VectorStore, VectorStoreError, open_vector_store

__all__ = ["COLLECTIONS", "DOCUMENTS", "FIELD_NAME", "RESERVED", "KnowledgeCollections"]

COLLECTIONS = "knowledge_collections"
DOCUMENTS = "knowledge_documents"
DOCUMENT_JOBS = JobKind(
    DOCUMENTS, DocumentStatus.PENDING, DocumentStatus.PROCESSING, DOCUMENT_TERMINAL
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FIELD_TYPES = ("string", "int", "float", "bool")
RESERVED = {*BUILTIN_FIELDS, "id", "vector", "text", "team_id", "metadata"}


class KnowledgeCollections:
    """Collections, and the state every part of the knowledge service shares."""

    settings: Settings
    limits: KnowledgeSettings
    store: DocumentStore
    jobs: Jobs
    llm: LLMService
    blobs: BlobStore
    _vectors: VectorStore | None

    @property
    def vectors(self) -> VectorStore:
        if self._vectors is None:
            uri = self.limits.vector_uri
            if not uri:
                raise VectorStoreError(
                    "no vector store is configured: `linqra up` starts Milvus Lite, or set "
                    "LINQRA_KNOWLEDGE__VECTOR_URI to a Milvus server"
                )
            self._vectors = open_vector_store(uri, self.limits.vector_token)
        return self._vectors

    async def create_collection(self, team_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(body) - {
            "name", "description", "embedder", "dimension", "metadata_fields",
            "chunk_tokens", "chunk_overlap",
        }  # fmt: skip
        if unknown:
            raise ValidationError(f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
        name = body.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValidationError(
                "name is 1-128 letters, digits, '_', '.', '-', starting with a letter or digit",
                field="name",
            )
        description = body.get("description") or ""
        if not isinstance(description, str) or len(description) > 2000:
            raise ValidationError(
                "description is text of at most 2000 characters", field="description"
            )
        fields = body.get("metadata_fields") or {}
        if not isinstance(fields, Mapping) or len(fields) > 32:
            raise ValidationError(
                'metadata_fields maps up to 32 names to "string", "int", "float" or "bool"',
                field="metadata_fields",
            )
        for key, kind in fields.items():
            if not isinstance(key, str) or not FIELD_NAME.match(key) or key in RESERVED:
                raise ValidationError(
                    f"{key!r}: a field name is lower-case letters, digits and _ and not one of "
                    f"{', '.join(sorted(RESERVED))}",
                    field=f"metadata_fields.{key}",
                )
            if kind not in _FIELD_TYPES:
                raise ValidationError(
                    f"type must be one of {', '.join(_FIELD_TYPES)}", field=f"metadata_fields.{key}"
                )
        chunk_tokens = body.get("chunk_tokens", self.limits.chunk_tokens)
        overlap = body.get("chunk_overlap", self.limits.chunk_overlap)
        if not isinstance(chunk_tokens, int) or not 32 <= chunk_tokens <= 8000:
            raise ValidationError(
                "chunk_tokens is a whole number from 32 to 8000", field="chunk_tokens"
            )
        if not isinstance(overlap, int) or not 0 <= overlap < chunk_tokens:
            raise ValidationError(
                "chunk_overlap is from 0 to chunk_tokens - 1", field="chunk_overlap"
            )
        dimension = body.get("dimension")
        if dimension is not None and (
            not isinstance(dimension, int) or isinstance(dimension, bool)
        ):
            raise ValidationError("dimension is a whole number", field="dimension")
        embedder_ref = body.get("embedder") or self.limits.default_embedder
        if not isinstance(embedder_ref, str):
            raise ValidationError("embedder is provider:model", field="embedder")
        embedder = self.llm.embedder(embedder_ref, dimension)
        collection_id = new_id("kc")
        now = iso()
        doc: dict[str, Any] = {
            "id": collection_id,
            "name": name,
            "description": description,
            "embedder": embedder.name,
            "dimension": embedder.dimension,
            "metadata_fields": dict(fields),
            "chunk_tokens": chunk_tokens,
            "chunk_overlap": overlap,
            "vector_collection": f"lq_{collection_id.replace('-', '_')}",
            "created_at": now,
            "updated_at": now,
        }
        # the vector collection first: if it cannot be made, no record points at nothing
        await self.vectors.create_collection(
            doc["vector_collection"], embedder.dimension, dict(fields)
        )
        try:
            await self.store.insert(COLLECTIONS, team_id, doc)
        except Conflict:
            await self.vectors.drop_collection(doc["vector_collection"])
            raise Conflict(f"a collection named {name!r} exists", field="name") from None
        return doc

    async def list_collections(
        self, team_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        items = await self.store.find(
            COLLECTIONS, team_id, sort=[("created_at", -1)], limit=limit, skip=offset
        )
        return items, await self.store.count(COLLECTIONS, team_id)

    async def get_collection(self, team_id: str, ref: str) -> dict[str, Any]:
        """By id, or by name (what workflow steps use)."""
        doc = await self.store.get(COLLECTIONS, team_id, ref)
        if doc is None:
            found = await self.store.find(COLLECTIONS, team_id, {"name": ref}, limit=1)
            doc = found[0] if found else None
        if doc is None:
            raise NotFound(f"no knowledge collection {ref!r}", field="collection")
        return doc

    async def collection_stats(self, team_id: str, collection: dict[str, Any]) -> dict[str, Any]:
        counts = {
            status: await self.store.count(
                DOCUMENTS, team_id, {"collection_id": collection["id"], "status": status}
            )
            for status in DocumentStatus
        }
        return {**collection, "documents": counts}

    async def delete_collection(self, team_id: str, ref: str) -> None:
        collection = await self.get_collection(team_id, ref)
        await self.vectors.drop_collection(collection["vector_collection"])
        while docs := await self.store.find(
            DOCUMENTS, team_id, {"collection_id": collection["id"]}, limit=500
        ):
            for doc in docs:
                await self.blobs.delete(team_id, doc["blob_key"])
                await self.store.delete(DOCUMENTS, team_id, doc["id"])
        await self.store.delete(COLLECTIONS, team_id, collection["id"])
