"""Knowledge retrieval: a query (text or vector) and a filter to ranked chunks with citations.

A part of :class:`~linqra.knowledge.service.KnowledgeService` (see
:mod:`linqra.knowledge.collections` for how the parts fit). A text query is embedded with the
collection's own embedder; the filter language is :mod:`linqra.knowledge.filters`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from linqra.errors import ValidationError
from linqra.knowledge.collections import KnowledgeCollections
from linqra.knowledge.documents import page_numbers
from linqra.knowledge.filters import compile_filter
from linqra.llm.embeddings import Embedder
from linqra.metrics.catalogue import KNOWLEDGE_SEARCH_DURATION
from linqra.tracing import span
from linqra.vectors import BUILTIN_FIELDS

__all__ = ["MAX_TOP_K", "KnowledgeRetrieval"]

MAX_TOP_K = 100


class KnowledgeRetrieval(KnowledgeCollections):
    """Similarity search over a collection's chunks."""

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
        started = time.perf_counter()
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
        if embedder is not None and embedder != collection.embedder:
            raise ValidationError(
                f"collection {collection.name!r} is embedded with {collection.embedder}, "
                f"not {embedder}: a query must use the same embedder",
                field="embedder",
            )
        fields = {**BUILTIN_FIELDS, **collection.metadata_fields}
        expr = compile_filter(filter, fields)
        if vector is not None:
            if query:
                raise ValidationError("give query or vector, not both", field="vector")
            if not isinstance(vector, Sequence) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in vector
            ):
                raise ValidationError("vector is a list of numbers", field="vector")
            if len(vector) != collection.dimension:
                raise ValidationError(
                    f"vector has {len(vector)} dimensions; collection {collection.name!r} "
                    f"({collection.embedder}) has {collection.dimension}",
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
            emb: Embedder = self.llm.embedder(collection.embedder, collection.dimension)
            result = await self.llm.embed(
                team_id, emb, [query], "query", caller=caller or {"type": "knowledge.search"}
            )
            probe = result.vectors[0]
        attributes = {
            "db.system.name": "milvus",
            "db.operation.name": "search",
            "linqra.top_k": top_k,
        }
        with span("vector search", attributes=attributes):
            hits = await self.vectors.search(
                collection.vector_collection,
                team_id,
                probe,
                top_k=top_k,
                expr=expr,
                output_fields=[
                    "text", "document_id", "chunk_index", "title", "file_name", "page_start",
                    "page_end", "metadata", *collection.metadata_fields,
                ],
            )  # fmt: skip
        out: list[dict[str, Any]] = []
        for hit in hits:
            if min_score is not None and hit.score < min_score:
                continue
            f = hit.fields
            metadata = dict(f.get("metadata") or {})
            metadata.update(
                {k: f.get(k) for k in collection.metadata_fields if f.get(k) is not None}
            )
            out.append(
                {
                    "document_id": f.get("document_id"),
                    "title": f.get("title"),
                    "file_name": f.get("file_name") or None,
                    "page_numbers": page_numbers(f.get("page_start"), f.get("page_end")),
                    "rank": len(out) + 1,
                    "score": round(hit.score, 6),
                    "text": f.get("text"),
                    "chunk_index": f.get("chunk_index"),
                    "metadata": metadata,
                    "collection": collection.name,
                }
            )
        self.metrics.observe(KNOWLEDGE_SEARCH_DURATION, time.perf_counter() - started)
        return out
