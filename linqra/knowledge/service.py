"""The Knowledge Hub: team collections of documents, ingested into a vector store, searched with
citations.

Records live in the document store (``knowledge_collections``, ``knowledge_documents``), the
original files in the blob store, the chunks and their vectors in the vector store (one Milvus
collection per knowledge collection; see :mod:`linqra.vectors`). A document goes
``PENDING → PROCESSING → READY | FAILED``; ``chunks_done``/``chunks_total`` show progress, and a
failure keeps its reason and leaves no vectors behind. Uploading the same bytes twice to a
collection returns the first document (same checksum, no duplicate). Ingestion is idempotent
(chunk ids are ``<document>-<index>``, a document's old vectors are removed first), so a retried
or adopted ingestion converges to the same state.

The service is split by what a newcomer looks for, one base class per module: collections
(:mod:`linqra.knowledge.collections`), documents (:mod:`linqra.knowledge.documents`), ingestion
(:mod:`linqra.knowledge.ingestion`) and retrieval (:mod:`linqra.knowledge.retrieval`). This
module builds the service's state once and holds its lifecycle.
"""

from __future__ import annotations

from linqra.config import Settings
from linqra.jobs import Jobs
from linqra.knowledge.blobs import BlobStore, FileBlobStore
from linqra.knowledge.collections import COLLECTIONS, DOCUMENT_JOBS, DOCUMENTS
from linqra.knowledge.ingestion import KnowledgeIngestion
from linqra.knowledge.retrieval import MAX_TOP_K, KnowledgeRetrieval
from linqra.llm.service import LLMService
from linqra.metrics import NOOP, Metrics
from linqra.store import DocumentStore, IndexSpec
from linqra.vectors import VectorStore

__all__ = [
    "COLLECTIONS",
    "DOCUMENTS",
    "KNOWLEDGE_INDEXES",
    "MAX_TOP_K",
    "KnowledgeService",
]

KNOWLEDGE_INDEXES = [
    IndexSpec(COLLECTIONS, ("name",), unique=True),
    IndexSpec(DOCUMENTS, ("collection_id", "checksum"), unique=True),
    IndexSpec(DOCUMENTS, ("collection_id", "created_at")),
    IndexSpec(DOCUMENTS, ("status", "heartbeat_at")),
]


class KnowledgeService(KnowledgeIngestion, KnowledgeRetrieval):
    """The Knowledge Hub of every team: collections, documents, ingestion and retrieval."""

    def __init__(
        self,
        settings: Settings,
        store: DocumentStore,
        llm: LLMService,
        vectors: VectorStore | None = None,
        blobs: BlobStore | None = None,
        *,
        metrics: Metrics = NOOP,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.limits = settings.knowledge
        self.store = store
        self.jobs = Jobs(store, DOCUMENT_JOBS)
        self.llm = llm
        self._vectors = vectors
        self.blobs = blobs or FileBlobStore(settings.resolved_blob_dir)

    async def init(self) -> None:
        await self.store.ensure_indexes(KNOWLEDGE_INDEXES)

    async def close(self) -> None:
        if self._vectors is not None:
            await self._vectors.close()
