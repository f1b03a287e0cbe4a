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

from typing import Any

from linqra.clock import iso, new_id
from linqra.config import KnowledgeSettings, Settings
from linqra.errors import Conflict, NotFound, ValidationError
from linqra.jobs import JobKind, Jobs
from linqra.knowledge.blobs import BlobStore
from linqra.knowledge.models import Collection, CollectionInput, CollectionStats
from linqra.llm.service import LLMService
from linqra.metrics import Metrics
from linqra.status import DOCUMENT_TERMINAL, DocumentStatus
from linqra.store import DocumentStore
from linqra.validation import parse_model
from linqra.vectors import VectorStore, VectorStoreError, open_vector_store

__all__ = ["COLLECTIONS", "DOCUMENTS", "KnowledgeCollections"]

COLLECTIONS = "knowledge_collections"
DOCUMENTS = "knowledge_documents"
DOCUMENT_JOBS = JobKind(
    DOCUMENTS, DocumentStatus.PENDING, DocumentStatus.PROCESSING, DOCUMENT_TERMINAL
)


class KnowledgeCollections:
    """Collections, and the state every part of the knowledge service shares."""

    settings: Settings
    limits: KnowledgeSettings
    store: DocumentStore
    jobs: Jobs
    llm: LLMService
    blobs: BlobStore
    metrics: Metrics
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
            self._vectors = open_vector_store(
                uri,
                self.limits.vector_token,
                index=self.limits.vector_index,
                max_concurrent_calls=self.settings.connections.milvus.max_concurrent_calls,
            )
        return self._vectors

    async def create_collection(self, team_id: str, body: Any) -> Collection:
        data = parse_model(CollectionInput, body)
        chunk_tokens = data.chunk_tokens or self.limits.chunk_tokens
        overlap = self.limits.chunk_overlap if data.chunk_overlap is None else data.chunk_overlap
        if overlap >= chunk_tokens:
            raise ValidationError(
                f"chunk_overlap is from 0 to chunk_tokens - 1 ({chunk_tokens - 1})",
                field="chunk_overlap",
            )
        embedder = self.llm.embedder(data.embedder or self.limits.default_embedder, data.dimension)
        name, fields = data.name, data.metadata_fields
        collection_id = new_id("kc")
        now = iso()
        doc: dict[str, Any] = {
            "id": collection_id,
            "name": name,
            "description": data.description,
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
        return Collection.model_validate(doc)

    async def list_collections(
        self, team_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[Collection], int]:
        docs = await self.store.find(
            COLLECTIONS, team_id, sort=[("created_at", -1)], limit=limit, skip=offset
        )
        items = [Collection.model_validate(d) for d in docs]
        return items, await self.store.count(COLLECTIONS, team_id)

    async def get_collection(self, team_id: str, ref: str) -> Collection:
        """By id, or by name (what workflow steps use)."""
        doc = await self.store.get(COLLECTIONS, team_id, ref)
        if doc is None:
            found = await self.store.find(COLLECTIONS, team_id, {"name": ref}, limit=1)
            doc = found[0] if found else None
        if doc is None:
            raise NotFound(f"no knowledge collection {ref!r}", field="collection")
        return Collection.model_validate(doc)

    async def collection_stats(self, team_id: str, collection: Collection) -> CollectionStats:
        counts = {
            status: await self.store.count(
                DOCUMENTS, team_id, {"collection_id": collection.id, "status": status}
            )
            for status in DocumentStatus
        }
        return CollectionStats.model_validate(
            {**collection.model_dump(exclude_unset=True), "documents": counts}
        )

    async def delete_collection(self, team_id: str, ref: str) -> None:
        collection = await self.get_collection(team_id, ref)
        await self.vectors.drop_collection(collection.vector_collection)
        while docs := await self.store.find(
            DOCUMENTS, team_id, {"collection_id": collection.id}, limit=500
        ):
            for doc in docs:
                await self.blobs.delete(team_id, doc["blob_key"])
                await self.store.delete(DOCUMENTS, team_id, doc["id"])
        await self.store.delete(COLLECTIONS, team_id, collection.id)
