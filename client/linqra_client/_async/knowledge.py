"""The Knowledge Hub (``client.knowledge``): collections, documents with upload progress, search."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from linqra_client import models
from linqra_client._async.pagination import AsyncPager
from linqra_client._base import aread_file, asleep, check_id, dump, monotonic, parse, validate
from linqra_client.errors import APITimeoutError
from linqra_client.progress import ProgressReader, UploadProgress

if TYPE_CHECKING:
    from linqra_client._async.client import AsyncLinqra

__all__ = ["AsyncKnowledge"]

DOCUMENT_DONE = frozenset({"READY", "FAILED"})
Progress = Callable[[UploadProgress], None]


def _mime(path: Path) -> str:
    if path.suffix.lower() in (".md", ".markdown"):
        return "text/markdown"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


class AsyncKnowledge:
    """Collections of documents, embedded into Milvus and searched with citations."""

    def __init__(self, client: AsyncLinqra) -> None:
        self._client = client

    # -- collections -----------------------------------------------------------------------
    def collections(self, *, limit: int = 50) -> AsyncPager[models.Collection]:
        return AsyncPager(self._client, "/v1/knowledge/collections", models.Collection, limit=limit)

    async def create_collection(self, name: str | None = None, **fields: Any) -> models.Collection:
        """A new collection: ``name``, and optionally ``description``, ``embedder``,
        ``chunk_tokens``, ``chunk_overlap``, ``metadata_fields``."""
        body = validate(models.CreateCollectionBody, {**({"name": name} if name else {}), **fields})
        return await self._client.call(
            models.Collection, "POST", "/v1/knowledge/collections", json=dump(body)
        )

    async def collection(self, collection: str) -> models.CollectionStats:
        """A collection (by id or name) with its document and chunk counts."""
        return await self._client.call(
            models.CollectionStats,
            "GET",
            f"/v1/knowledge/collections/{check_id(collection, 'collection')}",
        )

    async def delete_collection(self, collection: str) -> None:
        await self._client.request(
            "DELETE", f"/v1/knowledge/collections/{check_id(collection, 'collection')}"
        )

    # -- documents -------------------------------------------------------------------------
    def documents(
        self, collection: str, *, status: str | None = None, limit: int = 50
    ) -> AsyncPager[models.Document]:
        path = f"/v1/knowledge/collections/{check_id(collection, 'collection')}/documents"
        return AsyncPager(
            self._client, path, models.Document, params={"status": status}, limit=limit
        )

    async def document(self, collection: str, document_id: str) -> models.Document:
        """A document with its ingestion progress (``chunks_done`` of ``chunks_total``)."""
        return await self._client.call(
            models.Document,
            "GET",
            f"/v1/knowledge/collections/{check_id(collection, 'collection')}"
            f"/documents/{check_id(document_id, 'document_id')}",
        )

    async def delete_document(self, collection: str, document_id: str) -> None:
        await self._client.request(
            "DELETE",
            f"/v1/knowledge/collections/{check_id(collection, 'collection')}"
            f"/documents/{check_id(document_id, 'document_id')}",
        )

    async def reindex(self, collection: str, document_id: str) -> models.Document:
        """Ingest a document again (after a failure, or with the collection's new settings)."""
        return await self._client.call(
            models.Document,
            "POST",
            f"/v1/knowledge/collections/{check_id(collection, 'collection')}"
            f"/documents/{check_id(document_id, 'document_id')}/reindex",
        )

    async def add_text(
        self, collection: str, title: str, text: str, **fields: Any
    ) -> models.UploadedDocument:
        """Raw text as a document (``file_name``, ``mime_type``, ``metadata`` optional)."""
        body = validate(models.AddDocumentBody, {"title": title, "text": text, **fields})
        return await self._client.call(
            models.UploadedDocument,
            "POST",
            f"/v1/knowledge/collections/{check_id(collection, 'collection')}/documents",
            json=dump(body),
        )

    async def upload(
        self,
        collection: str,
        path: str | Path,
        *,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
        wait: bool = True,
        timeout: float = 600.0,
        progress: Progress | None = None,
    ) -> models.Document:
        """Upload a file (txt, md, html, pdf) and, with ``wait``, follow its ingestion until it
        is READY or FAILED. ``progress`` is called with an
        :class:`~linqra_client.progress.UploadProgress` as bytes are sent and chunks embedded.
        The same bytes again return the document already there (``duplicate``)."""
        file = Path(path)
        data = await aread_file(file)
        report = progress or (lambda _: None)

        def files() -> dict[str, Any]:
            reader = ProgressReader(
                data, lambda sent: report(UploadProgress(file.name, "upload", sent, len(data)))
            )
            form: dict[str, Any] = {"file": (file.name, reader, _mime(file))}
            if metadata:
                form["metadata"] = (None, json.dumps(metadata), "application/json")
            if title:
                form["title"] = (None, title)
            return form

        response = await self._client.request(
            "POST",
            f"/v1/knowledge/collections/{check_id(collection, 'collection')}/documents",
            files=files,
        )
        uploaded = parse(models.UploadedDocument, response.json())
        document = parse(models.Document, response.json())
        if not wait:
            return document
        deadline = monotonic() + timeout
        pause = 0.1
        while True:
            report(
                UploadProgress(
                    file.name,
                    "ingest",
                    document.chunks_done or 0,
                    document.chunks_total or 0,
                    document,
                )
            )
            if document.status in DOCUMENT_DONE:
                return document
            if monotonic() > deadline:
                raise APITimeoutError(
                    f"document {uploaded.id} still {document.status} after {timeout} s"
                )
            await asleep(pause)
            pause = min(pause * 1.5, 1.0)
            document = await self.document(uploaded.collection_id, uploaded.id)

    async def search(
        self,
        collection: str,
        query: str | None = None,
        *,
        top_k: int = 5,
        filter: str | dict[str, Any] | None = None,
        min_score: float | None = None,
        vector: list[float] | None = None,
    ) -> models.SearchResults:
        """The ``top_k`` chunks nearest ``query`` (or ``vector``), with their citations;
        ``filter`` on metadata (``"year >= 2024 and lang == 'en'"`` or a JSON object)."""
        raw = {
            "query": query,
            "top_k": top_k,
            "filter": filter,
            "min_score": min_score,
            "vector": vector,
        }
        body = validate(models.SearchRequest, {k: v for k, v in raw.items() if v is not None})
        return await self._client.call(
            models.SearchResults,
            "POST",
            f"/v1/knowledge/collections/{check_id(collection, 'collection')}/search",
            json=dump(body),
        )
