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
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from linqra.clock import iso, new_id
from linqra.config import Settings
from linqra.errors import Conflict, LinqraError, NotFound, ValidationError
from linqra.jobs import DOCUMENT_JOBS, Jobs
from linqra.knowledge.blobs import BlobStore, FileBlobStore
from linqra.knowledge.extract import MIME_TYPES, chunk_pages, detect_type, extract
from linqra.knowledge.filters import compile_filter
from linqra.llm.embeddings import Embedder
from linqra.llm.service import LLMService
from linqra.store import DocumentStore, IndexSpec
from linqra.vectors import BUILTIN_FIELDS, VectorStore, VectorStoreError, open_vector_store

__all__ = [
    "COLLECTIONS",
    "DOCUMENTS",
    "KNOWLEDGE_INDEXES",
    "MAX_TOP_K",
    "KnowledgeService",
]

COLLECTIONS = "knowledge_collections"
DOCUMENTS = "knowledge_documents"
KNOWLEDGE_INDEXES = [
    IndexSpec(COLLECTIONS, ("name",), unique=True),
    IndexSpec(DOCUMENTS, ("collection_id", "checksum"), unique=True),
    IndexSpec(DOCUMENTS, ("collection_id", "created_at")),
    IndexSpec(DOCUMENTS, ("status", "heartbeat_at")),
]
MAX_TOP_K = 100
EMBED_BATCH = 64
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_FIELD = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FIELD_TYPES = ("string", "int", "float", "bool")
RESERVED = {*BUILTIN_FIELDS, "id", "vector", "text", "team_id", "metadata"}


def _now_epoch() -> int:
    return int(datetime.now(UTC).timestamp())


class KnowledgeService:
    def __init__(
        self,
        settings: Settings,
        store: DocumentStore,
        llm: LLMService,
        vectors: VectorStore | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self.settings = settings
        self.limits = settings.knowledge
        self.store = store
        self.jobs = Jobs(store, DOCUMENT_JOBS)
        self.llm = llm
        self._vectors = vectors
        self.blobs = blobs or FileBlobStore(settings.resolved_blob_dir)

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

    async def init(self) -> None:
        await self.store.ensure_indexes(KNOWLEDGE_INDEXES)

    async def close(self) -> None:
        if self._vectors is not None:
            await self._vectors.close()

    # -- collections ----------------------------------------------------------------------
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
            if not isinstance(key, str) or not _FIELD.match(key) or key in RESERVED:
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
            for status in ("PENDING", "PROCESSING", "READY", "FAILED")
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

    # -- documents --------------------------------------------------------------------------
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
            raise ValidationError(
                f"the file is {len(data)} bytes; the limit is {self.limits.max_upload_bytes}",
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
            DOCUMENTS, team_id, {"collection_id": collection["id"], "checksum": checksum}, limit=1
        )
        if existing:
            return existing[0], False
        doc_id = new_id("kd")
        ext = MIME_TYPES[detected][0]
        now = iso()
        doc = {
            "id": doc_id,
            "collection_id": collection["id"],
            "title": title or (file_name.rsplit(".", 1)[0] if file_name else None) or doc_id,
            "file_name": file_name,
            "mime_type": detected,
            "size": len(data),
            "checksum": checksum,
            "metadata": clean_metadata,
            "source": source,
            "status": "PENDING",
            "error": None,
            "chunks_total": None,
            "chunks_done": 0,
            "pages": None,
            "tokens": None,
            "attempts": 0,
            "blob_key": f"{collection['id']}/{doc_id}{ext}",
            "created_at": now,
            "updated_at": now,
            "heartbeat_at": now,
        }
        await self.blobs.put(team_id, doc["blob_key"], data)
        try:
            await self.store.insert(DOCUMENTS, team_id, doc)
        except Conflict:  # the same bytes raced in: keep the winner, drop our blob
            await self.blobs.delete(team_id, doc["blob_key"])
            again = await self.store.find(
                DOCUMENTS,
                team_id,
                {"collection_id": collection["id"], "checksum": checksum},
                limit=1,
            )
            return again[0], False
        return doc, True

    def _metadata(self, collection: Mapping[str, Any], raw: Any) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            raise ValidationError("metadata is a JSON object", field="metadata")
        if len(str(raw)) > 16_384:
            raise ValidationError("metadata is at most 16 KiB", field="metadata")
        declared = collection.get("metadata_fields") or {}
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
        if doc is None or doc["collection_id"] != collection["id"]:
            raise NotFound(f"no document {doc_id!r} in {collection['name']!r}", field="document_id")
        out = dict(doc)
        total = doc.get("chunks_total")
        out["progress"] = (
            round(doc["chunks_done"] / total, 4)
            if total
            else (1.0 if doc["status"] == "READY" else 0.0)
        )
        if chunks:
            rows = await self.vectors.query(
                collection["vector_collection"],
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
                        "page_numbers": _pages(r.get("page_start"), r.get("page_end")),
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
        where: dict[str, Any] = {"collection_id": collection["id"]}
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
            collection["vector_collection"], team_id, f'document_id == "{doc_id}"'
        )
        await self.blobs.delete(team_id, doc["blob_key"])
        await self.store.delete(DOCUMENTS, team_id, doc_id)

    async def mark_for_reindex(
        self, team_id: str, collection_ref: str, doc_id: str
    ) -> dict[str, Any]:
        doc = await self.get_document(team_id, collection_ref, doc_id)
        if doc["status"] == "PROCESSING":
            raise Conflict(
                "the document is being ingested; try again when it is done", field="document_id"
            )
        await self.store.update(
            DOCUMENTS, team_id, doc_id,
            {"status": "PENDING", "error": None, "chunks_done": 0, "updated_at": iso(), "heartbeat_at": iso()},
        )  # fmt: skip
        return await self.get_document(team_id, collection_ref, doc_id)

    # -- ingestion -------------------------------------------------------------------------------
    async def ingest(self, team_id: str, doc_id: str) -> dict[str, Any]:
        """Extract, chunk, embed and index one document; returns its final record.

        Safe to run again (a retry, an adopted ingestion): a READY document is left alone,
        anything else is redone from the original file.
        """
        doc = await self.store.get(DOCUMENTS, team_id, doc_id)
        if doc is None:
            raise NotFound(f"no document {doc_id!r}", field="document_id")
        if doc["status"] == "READY":
            return doc
        collection = await self.get_collection(team_id, doc["collection_id"])
        await self._update(
            team_id,
            doc_id,
            status="PROCESSING",
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
                    collection["vector_collection"], team_id, f'document_id == "{doc_id}"'
                )
            except Exception:  # the vector store is what failed: the next ingestion clears it
                reason += " (vectors of this document may remain until it is re-indexed)"
            await self._update(team_id, doc_id, status="FAILED", error=reason)
            failed = await self.store.get(DOCUMENTS, team_id, doc_id)
            assert failed is not None
            return failed
        return record

    async def _index(
        self, team_id: str, collection: dict[str, Any], doc: dict[str, Any]
    ) -> dict[str, Any]:
        data = await self.blobs.get(team_id, doc["blob_key"])
        if data is None:
            raise ValidationError("the original file is missing from the blob store", field="file")
        pages, found_title = await asyncio.to_thread(extract, data, doc["mime_type"])
        chunks = await asyncio.to_thread(
            chunk_pages, pages, collection["chunk_tokens"], collection["chunk_overlap"]
        )
        title = doc["title"]
        if found_title and (not doc["file_name"] or title == doc["file_name"].rsplit(".", 1)[0]):
            title = found_title[:500]
        await self._update(
            team_id, doc["id"], chunks_total=len(chunks), title=title,
            pages=max((p.number or 0) for p in pages) or None,
            tokens=sum(c.tokens for c in chunks),
        )  # fmt: skip
        name = collection["vector_collection"]
        await self.vectors.delete(name, team_id, f'document_id == "{doc["id"]}"')
        embedder = self.llm.embedder(collection["embedder"], collection["dimension"])
        declared = collection.get("metadata_fields") or {}
        metadata = doc.get("metadata") or {}
        created = _now_epoch()
        caller = {"type": "knowledge", "collection_id": collection["id"], "document_id": doc["id"]}
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
            await self._update(team_id, doc["id"], chunks_done=start + len(batch))
        await self.vectors.flush(name)
        await self._update(team_id, doc["id"], status="READY", completed_at=iso())
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

    # -- retrieval -------------------------------------------------------------------------------
    async def search(
        self,
        team_id: str,
        collection_ref: str,
        *,
        query: str | None = None,
        vector: Sequence[float] | None = None,
        top_k: int = 5,
        filter: Any = None,
        min_score: float | None = None,
        embedder: str | None = None,
        caller: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Chunks ranked by similarity, as citations:
        ``{document_id, title, file_name, page_numbers, rank, score, text, chunk_index, metadata}``."""
        collection = await self.get_collection(team_id, collection_ref)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise ValidationError(f"top_k is a whole number from 1 to {MAX_TOP_K}", field="top_k")
        if min_score is not None and (
            isinstance(min_score, bool)
            or not isinstance(min_score, int | float)
            or not -1 <= min_score <= 1
        ):
            raise ValidationError(
                "min_score is a number from -1 to 1 (cosine similarity)", field="min_score"
            )
        if embedder is not None and embedder != collection["embedder"]:
            raise ValidationError(
                f"collection {collection['name']!r} is embedded with {collection['embedder']}, "
                f"not {embedder}: a query must use the same embedder",
                field="embedder",
            )
        fields = {**BUILTIN_FIELDS, **(collection.get("metadata_fields") or {})}
        expr = compile_filter(filter, fields)
        if vector is not None:
            if query:
                raise ValidationError("give query or vector, not both", field="vector")
            if not isinstance(vector, Sequence) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in vector
            ):
                raise ValidationError("vector is a list of numbers", field="vector")
            if len(vector) != collection["dimension"]:
                raise ValidationError(
                    f"vector has {len(vector)} dimensions; collection {collection['name']!r} "
                    f"({collection['embedder']}) has {collection['dimension']}",
                    field="vector",
                )
            probe = list(vector)
        else:
            if not isinstance(query, str) or not query.strip():
                raise ValidationError(
                    "query is required (non-empty text), or give vector", field="query"
                )
            if len(query) > 20_000:
                raise ValidationError("query is at most 20000 characters", field="query")
            emb: Embedder = self.llm.embedder(collection["embedder"], collection["dimension"])
            result = await self.llm.embed(
                team_id, emb, [query], "query", caller=caller or {"type": "knowledge.search"}
            )
            probe = result.vectors[0]
        hits = await self.vectors.search(
            collection["vector_collection"],
            team_id,
            probe,
            top_k=top_k,
            expr=expr,
            output_fields=[
                "text", "document_id", "chunk_index", "title", "file_name", "page_start",
                "page_end", "metadata", *(collection.get("metadata_fields") or {}),
            ],
        )  # fmt: skip
        out: list[dict[str, Any]] = []
        for hit in hits:
            if min_score is not None and hit.score < min_score:
                continue
            f = hit.fields
            metadata = dict(f.get("metadata") or {})
            metadata.update(
                {
                    k: f.get(k)
                    for k in collection.get("metadata_fields") or {}
                    if f.get(k) is not None
                }
            )
            out.append(
                {
                    "document_id": f.get("document_id"),
                    "title": f.get("title"),
                    "file_name": f.get("file_name") or None,
                    "page_numbers": _pages(f.get("page_start"), f.get("page_end")),
                    "rank": len(out) + 1,
                    "score": round(hit.score, 6),
                    "text": f.get("text"),
                    "chunk_index": f.get("chunk_index"),
                    "metadata": metadata,
                    "collection": collection["name"],
                }
            )
        return out

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
                if type(v) in types and _FIELD.match(k) and k not in RESERVED
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


def _pages(start: int | None, end: int | None) -> list[int]:
    if start is None:
        return []
    return list(range(start, (end or start) + 1))
