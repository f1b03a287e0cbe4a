"""Knowledge documents: adding (deduplicated by checksum), reading, listing, deleting and
marking for re-indexing.

A part of :class:`~linqra.knowledge.service.KnowledgeService` (see
:mod:`linqra.knowledge.collections` for how the parts fit). A document is a record in
``knowledge_documents`` and its original file in the blob store; adding one leaves it
``PENDING`` for :mod:`linqra.knowledge.ingestion`. The same bytes twice in one collection give
the first document back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from linqra.clock import iso, new_id
from linqra.errors import Conflict, NotFound, PayloadTooLarge, ValidationError
from linqra.knowledge.collections import DOCUMENTS, KnowledgeCollections
from linqra.knowledge.extract import MIME_TYPES, detect_type
from linqra.knowledge.models import Collection
from linqra.status import DocumentStatus

__all__ = ["KnowledgeDocuments", "page_numbers"]


class KnowledgeDocuments(KnowledgeCollections):
    """Documents of a collection (their records and original files)."""

    async def add_document(
        self,
        team_id: str,
        collection_ref: str,
        data: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        source: str = "upload",
    ) -> tuple[dict[str, Any], bool]:
        """The document record (PENDING) and whether it is new; the same bytes twice in one
        collection give the first document back."""
        collection = await self.get_collection(team_id, collection_ref)
        if len(data) > self.limits.max_upload_bytes:
            raise PayloadTooLarge(
                f"the file is {len(data)} bytes; the limit is {self.limits.max_upload_bytes}"
                " (knowledge.max_upload_bytes)",
                field="file",
            )
        if not data:
            raise ValidationError("the file is empty", field="file")
        if file_name is not None and (len(file_name) > 255 or "\x00" in file_name):
            raise ValidationError("file_name is at most 255 characters", field="file_name")
        detected = detect_type(data, file_name, mime_type)
        clean_metadata = self._metadata(collection, metadata or {})
        if title is not None and (not isinstance(title, str) or len(title) > 500):
            raise ValidationError("title is text of at most 500 characters", field="title")
        checksum = hashlib.sha256(data).hexdigest()
        existing = await self.store.find(
            DOCUMENTS, team_id, {"collection_id": collection.id, "checksum": checksum}, limit=1
        )
        if existing:
            return existing[0], False
        doc_id = new_id("kd")
        ext = MIME_TYPES[detected][0]
        now = iso()
        blob_key = f"{collection.id}/{doc_id}{ext}"
        doc = {
            "id": doc_id,
            "collection_id": collection.id,
            "title": title or (file_name.rsplit(".", 1)[0] if file_name else None) or doc_id,
            "file_name": file_name,
            "mime_type": detected,
            "size": len(data),
            "checksum": checksum,
            "metadata": clean_metadata,
            "source": source,
            "status": DocumentStatus.PENDING,
            "error": None,
            "chunks_total": None,
            "chunks_done": 0,
            "pages": None,
            "tokens": None,
            "attempts": 0,
            "blob_key": blob_key,
            "created_at": now,
            "updated_at": now,
            "heartbeat_at": now,
        }
        await self.blobs.put(team_id, blob_key, data)
        try:
            await self.store.insert(DOCUMENTS, team_id, doc)
        except Conflict:  # the same bytes raced in: keep the winner, drop our blob
            await self.blobs.delete(team_id, blob_key)
            again = await self.store.find(
                DOCUMENTS,
                team_id,
                {"collection_id": collection.id, "checksum": checksum},
                limit=1,
            )
            return again[0], False
        return doc, True

    def _metadata(self, collection: Collection, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            raise ValidationError("metadata is a JSON object", field="metadata")
        if len(str(raw)) > 16_384:
            raise ValidationError("metadata is at most 16 KiB", field="metadata")
        declared = collection.metadata_fields
        for key, kind in declared.items():
            value = raw.get(key)
            if value is None:
                continue
            ok = {
                "string": isinstance(value, str) and len(value) <= 2048,
                "int": isinstance(value, int) and not isinstance(value, bool),
                "float": isinstance(value, int | float) and not isinstance(value, bool),
                "bool": isinstance(value, bool),
            }[kind]
            if not ok:
                raise ValidationError(f"metadata.{key} must be a {kind}", field=f"metadata.{key}")
        return dict(raw)

    async def get_document(
        self, team_id: str, collection_ref: str, doc_id: str, *, chunks: bool = False
    ) -> dict[str, Any]:
        collection = await self.get_collection(team_id, collection_ref)
        doc = await self.store.get(DOCUMENTS, team_id, doc_id)
        if doc is None or doc["collection_id"] != collection.id:
            raise NotFound(f"no document {doc_id!r} in {collection.name!r}", field="document_id")
        out = dict(doc)
        total = doc.get("chunks_total")
        out["progress"] = (
            round(doc["chunks_done"] / total, 4)
            if total
            else (1.0 if doc["status"] == DocumentStatus.READY else 0.0)
        )
        if chunks:
            rows = await self.vectors.query(
                collection.vector_collection,
                team_id,
                f'document_id == "{doc_id}"',
                output_fields=["chunk_index", "text", "page_start", "page_end"],
                limit=16_384,
            )
            out["chunks"] = sorted(
                (
                    {
                        "index": r["chunk_index"],
                        "text": r["text"],
                        "page_numbers": page_numbers(r.get("page_start"), r.get("page_end")),
                    }
                    for r in rows
                ),
                key=lambda c: c["index"],
            )
        return out

    async def list_documents(
        self,
        team_id: str,
        collection_ref: str,
        *,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        collection = await self.get_collection(team_id, collection_ref)
        where: dict[str, Any] = {"collection_id": collection.id}
        if status:
            where["status"] = status
        items = await self.store.find(
            DOCUMENTS, team_id, where, sort=[("created_at", -1)], limit=limit, skip=offset
        )
        return items, await self.store.count(DOCUMENTS, team_id, where)

    async def delete_document(self, team_id: str, collection_ref: str, doc_id: str) -> None:
        doc = await self.get_document(team_id, collection_ref, doc_id)
        collection = await self.get_collection(team_id, doc["collection_id"])
        await self.vectors.delete(
            collection.vector_collection, team_id, f'document_id == "{doc_id}"'
        )
        await self.blobs.delete(team_id, doc["blob_key"])
        await self.store.delete(DOCUMENTS, team_id, doc_id)

    async def mark_for_reindex(
        self, team_id: str, collection_ref: str, doc_id: str
    ) -> dict[str, Any]:
        doc = await self.get_document(team_id, collection_ref, doc_id)
        if doc["status"] == DocumentStatus.PROCESSING:
            raise Conflict(
                "the document is being ingested; try again when it is done", field="document_id"
            )
        await self.store.update(
            DOCUMENTS, team_id, doc_id,
            {"status": DocumentStatus.PENDING, "error": None, "chunks_done": 0, "updated_at": iso(), "heartbeat_at": iso()},
        )  # fmt: skip
        return await self.get_document(team_id, collection_ref, doc_id)


def page_numbers(start: int | None, end: int | None) -> list[int]:
    """The pages a chunk spans, first to last; none when its file has no pages."""
    if start is None:
        return []
    return list(range(start, (end or start) + 1))
