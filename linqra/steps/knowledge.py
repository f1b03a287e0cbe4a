"""``milvus`` and ``knowledge-hub`` workflow steps (Linqra's RAG steps).

``milvus``:
  * ``action: search`` — ``params: {collection, text | vector, topK, filter?, minScore?}`` →
    ``{results: [citations], count, collection}``. A collection that does not exist yet gives
    no results (the seed's quote workflow searches before its first store).
  * ``action: upsert`` — ``params: {collection, text, metadata?, title?}`` → the stored
    document (``{id, status, …}``); the collection is made on first use.

``knowledge-hub``:
  * ``action: search`` — as above, over a Knowledge Hub collection (which must exist);
  * ``action: fetch`` — ``params: {collection, documentId, includeChunks?}`` → the document;
  * ``action: list`` — ``params: {collection, status?, limit?}`` → ``{documents, total}``.

Citations have one shape everywhere: ``{document_id, title, file_name, page_numbers, rank,
score, text, chunk_index, metadata, collection}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from linqra.errors import LinqraError, NotFound, StepError, ValidationError
from linqra.knowledge.service import MAX_TOP_K, KnowledgeService
from linqra.status import DocumentStatus
from linqra.steps.base import ExecutorKind, StepCall, StepContext

if TYPE_CHECKING:
    from linqra.workflows.definition import Step

__all__ = ["KnowledgeHubTarget", "MilvusTarget"]

_ACTIONS = {"milvus": ("search", "upsert"), "knowledge-hub": ("search", "fetch", "list")}


class _RagTarget:
    name = ""
    kind: ExecutorKind = "io"
    url_intent = False
    pure = False

    def validate(self, step: Step, field: str) -> None:
        actions = _ACTIONS[self.name]
        if step.action not in actions:
            raise ValidationError(
                f"action must be one of {', '.join(actions)}", field=f"{field}.action"
            )
        params = step.params
        collection = params.get("collection")
        if not isinstance(collection, str) or not collection:
            raise ValidationError(
                "params.collection is required", field=f"{field}.params.collection"
            )
        if step.action == "search":
            if "text" not in params and "vector" not in params and "query" not in params:
                raise ValidationError(
                    "params.text (or params.vector) is required", field=f"{field}.params.text"
                )
            top_k = params.get("topK", 5)
            if not (isinstance(top_k, str) and "{{" in top_k) and (
                not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K
            ):
                raise ValidationError(
                    f"params.topK is a whole number from 1 to {MAX_TOP_K}",
                    field=f"{field}.params.topK",
                )
        elif step.action == "upsert" and not params.get("text"):
            raise ValidationError("params.text is required", field=f"{field}.params.text")
        elif step.action == "fetch" and not params.get("documentId"):
            raise ValidationError(
                "params.documentId is required", field=f"{field}.params.documentId"
            )

    async def run(self, call: StepCall, ctx: StepContext) -> Any:
        knowledge = ctx.system.knowledge
        try:
            return await self._run(knowledge, call)
        except LinqraError as exc:  # bad input or a missing collection will not fix itself
            retryable = exc.status >= 500
            raise StepError(
                exc.message, field=exc.field, non_retryable=not retryable, code=exc.code
            ) from exc

    async def _search(
        self, knowledge: KnowledgeService, call: StepCall, *, missing_ok: bool
    ) -> Any:
        p = call.params
        name = p["collection"]
        try:
            results = await knowledge.search(
                call.team_id,
                name,
                query=p.get("text", p.get("query")) if p.get("vector") is None else None,
                vector=p.get("vector"),
                top_k=int(p.get("topK", 5)),
                filter=p.get("filter"),
                min_score=p.get("minScore"),
                caller={"type": "step", "execution_id": call.execution_id, "step": call.step},
            )
        except NotFound:
            if not missing_ok:
                raise
            results = []
        return {"collection": name, "results": results, "count": len(results)}

    async def _run(self, knowledge: KnowledgeService, call: StepCall) -> Any:
        raise NotImplementedError


class MilvusTarget(_RagTarget):
    name = "milvus"

    async def _run(self, knowledge: KnowledgeService, call: StepCall) -> Any:
        if call.action == "search":
            return await self._search(knowledge, call, missing_ok=True)
        p = call.params
        doc = await knowledge.upsert_text(
            call.team_id, p["collection"], str(p["text"]), p.get("metadata"), title=p.get("title")
        )
        if doc["status"] == DocumentStatus.FAILED:
            raise StepError(f"storing the text failed: {doc['error']}", non_retryable=False)
        return {
            "id": doc["id"],
            "collection": p["collection"],
            "status": doc["status"],
            "chunks": doc["chunks_total"],
            "metadata": doc["metadata"],
        }


class KnowledgeHubTarget(_RagTarget):
    name = "knowledge-hub"

    async def _run(self, knowledge: KnowledgeService, call: StepCall) -> Any:
        p = call.params
        if call.action == "search":
            return await self._search(knowledge, call, missing_ok=False)
        if call.action == "fetch":
            return await knowledge.get_document(
                call.team_id,
                p["collection"],
                str(p["documentId"]),
                chunks=bool(p.get("includeChunks")),
            )
        items, total = await knowledge.list_documents(
            call.team_id, p["collection"], status=p.get("status"), limit=int(p.get("limit", 50))
        )
        return {"documents": items, "total": total}
