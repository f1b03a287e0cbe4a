"""Knowledge ingestion: a document's original file extracted, chunked, embedded and indexed.

A part of :class:`~linqra.knowledge.service.KnowledgeService` (see
:mod:`linqra.knowledge.collections` for how the parts fit). A document goes
``PENDING → PROCESSING → READY | FAILED``; ``chunks_done``/``chunks_total`` show progress, and a
failure keeps its reason and leaves no vectors behind. Ingestion is idempotent (chunk ids are
``<document>-<index>``, a document's old vectors are removed first), so a retried or adopted
ingestion converges to the same state. Who runs it, and who re-runs a stale one, is
:mod:`linqra.jobs` (``DOCUMENT_JOBS``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from linqra.clock import iso
from linqra.errors import Conflict, LinqraError, NotFound, ValidationError
from linqra.knowledge.collections import DOCUMENTS
from linqra.knowledge.documents import KnowledgeDocuments
from linqra.knowledge.extract import chunk_pages, extract
from linqra.knowledge.models import FIELD_NAME, RESERVED_FIELDS, Collection
from linqra.metrics.catalogue import KNOWLEDGE_CHUNKS, KNOWLEDGE_DOCUMENTS
from linqra.status import DocumentStatus

__all__ = ["EMBED_BATCH", "KnowledgeIngestion"]

EMBED_BATCH = 64


def _now_epoch() -> int:
    return int(datetime.now(UTC).timestamp())


class KnowledgeIngestion(KnowledgeDocuments):
    """Indexing documents, and storing text as a document (a workflow's ``milvus`` upsert)."""

    async def ingest(self, team_id: str, doc_id: str) -> dict[str, Any]:
        """Extract, chunk, embed and index one document; returns its final record.

        Safe to run again (a retry, an adopted ingestion): a READY document is left alone,
        anything else is redone from the original file.
        """
        doc = await self.store.get(DOCUMENTS, team_id, doc_id)
        if doc is None:
            raise NotFound(f"no document {doc_id!r}", field="document_id")
        if doc["status"] == DocumentStatus.READY:
            return doc
        collection = await self.get_collection(team_id, doc["collection_id"])
        await self._update(
            team_id,
            doc_id,
            status=DocumentStatus.PROCESSING,
            attempts=doc["attempts"] + 1,
            error=None,
            chunks_done=0,
        )
        try:
            record = await self._index(team_id, collection, doc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is recorded, with no vectors left behind
            reason = exc.message if isinstance(exc, LinqraError) else f"{type(exc).__name__}: {exc}"
            try:
                await self.vectors.delete(
                    collection.vector_collection, team_id, f'document_id == "{doc_id}"'
                )
            except Exception:  # the vector store is what failed: the next ingestion clears it
                reason += " (vectors of this document may remain until it is re-indexed)"
            await self._update(team_id, doc_id, status=DocumentStatus.FAILED, error=reason)
            self.metrics.add(KNOWLEDGE_DOCUMENTS, status=DocumentStatus.FAILED)
            failed = await self.store.get(DOCUMENTS, team_id, doc_id)
            assert failed is not None
            return failed
        self.metrics.add(KNOWLEDGE_DOCUMENTS, status=DocumentStatus.READY)
        return record

    async def _index(
        self, team_id: str, collection: Collection, doc: dict[str, Any]
    ) -> dict[str, Any]:
        data = await self.blobs.get(team_id, doc["blob_key"])
        if data is None:
            raise ValidationError("the original file is missing from the blob store", field="file")
        pages, found_title = await asyncio.to_thread(extract, data, doc["mime_type"])
        chunks = await asyncio.to_thread(
            chunk_pages, pages, collection.chunk_tokens, collection.chunk_overlap
        )
        title = doc["title"]
        if found_title and (not doc["file_name"] or title == doc["file_name"].rsplit(".", 1)[0]):
            title = found_title[:500]
        await self._update(
            team_id, doc["id"], chunks_total=len(chunks), title=title,
            pages=max((p.number or 0) for p in pages) or None,
            tokens=sum(c.tokens for c in chunks),
        )  # fmt: skip
        name = collection.vector_collection
        await self.vectors.delete(name, team_id, f'document_id == "{doc["id"]}"')
        embedder = self.llm.embedder(collection.embedder, collection.dimension)
        declared = collection.metadata_fields
        metadata = doc.get("metadata") or {}
        created = _now_epoch()
        caller = {"type": "knowledge", "collection_id": collection.id, "document_id": doc["id"]}
        for start in range(0, len(chunks), EMBED_BATCH):
            batch = chunks[start : start + EMBED_BATCH]
            embedding = await self.llm.embed(
                team_id, embedder, [c.text for c in batch], "document", caller=caller
            )
            rows = [
                {
                    "id": f"{doc['id']}-{chunk.index:05d}",
                    "vector": vector,
                    "text": chunk.text[:60_000],
                    "document_id": doc["id"],
                    "chunk_index": chunk.index,
                    "title": title[:2000],
                    "file_name": (doc["file_name"] or "")[:2000],
                    "page_start": chunk.page_start,
                    "page_end": chunk.page_end,
                    "created_at": created,
                    **{key: metadata.get(key) for key in declared},
                    "metadata": {k: v for k, v in metadata.items() if k not in declared},
                }
                for chunk, vector in zip(batch, embedding.vectors, strict=True)
            ]
            await self.vectors.upsert(name, team_id, rows)
            self.metrics.add(KNOWLEDGE_CHUNKS, len(rows))
            await self._update(team_id, doc["id"], chunks_done=start + len(batch))
        await self.vectors.flush(name)
        await self._update(team_id, doc["id"], status=DocumentStatus.READY, completed_at=iso())
        final = await self.store.get(DOCUMENTS, team_id, doc["id"])
        assert final is not None
        return final

    async def _update(self, team_id: str, doc_id: str, **changes: Any) -> None:
        now = iso()
        await self.store.update(
            DOCUMENTS, team_id, doc_id, {**changes, "updated_at": now, "heartbeat_at": now}
        )

    async def stale_documents(
        self, older_than_seconds: float, limit: int = 100
    ) -> list[dict[str, Any]]:
        """PENDING or PROCESSING documents nobody has touched for a while (any team), for the reaper."""
        return await self.jobs.stale(older_than_seconds, limit=limit)

    async def upsert_text(
        self,
        team_id: str,
        collection_name: str,
        text: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        title: str | None = None,
    ) -> dict[str, Any]:
        """Store ``text`` (a workflow's ``milvus`` upsert): the collection is made on first use,
        declaring the first metadata's scalar fields; the text becomes a document, indexed now."""
        if not isinstance(text, str) or not text.strip():
            raise ValidationError("text is required", field="text")
        metadata = dict(metadata or {})
        try:
            await self.get_collection(team_id, collection_name)
        except NotFound:
            types = {bool: "bool", int: "int", float: "float", str: "string"}
            declared = {
                k: types[type(v)]
                for k, v in metadata.items()
                if type(v) in types and FIELD_NAME.match(k) and k not in RESERVED_FIELDS
            }
            with contextlib.suppress(Conflict):  # made meanwhile by a parallel step
                await self.create_collection(
                    team_id, {"name": collection_name, "metadata_fields": declared}
                )
        doc, _ = await self.add_document(
            team_id, collection_name, text.encode(), mime_type="text/plain",
            title=title or text.strip()[:80], metadata=metadata, source="workflow",
        )  # fmt: skip
        return await self.ingest(team_id, doc["id"])
