"""The Knowledge Hub: ``/v1/knowledge/collections…`` (collections, documents, search).

Uploads are decoded by :mod:`deployments.knowledge_api`; ingestion is handed to the launcher
(:meth:`linqra.runs.RunService.ingest`: a launcher that is down leaves the document PENDING).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from starlette.requests import Request

from deployments.auth import Member, Viewer
from deployments.deps import JsonObject, Limit, Offset, ResourceId, SystemDep, page
from deployments.knowledge_api import SearchRequest, TextDocument, upload_document
from deployments.schemas import Page, RecordRoute, body_schema
from linqra.knowledge.models import (
    Collection,
    CollectionInput,
    CollectionStats,
    Document,
    SearchResults,
    UploadedDocument,
)
from linqra.status import DocumentStatus

__all__ = ["router"]

router = APIRouter(prefix="/v1/knowledge/collections", tags=["knowledge"], route_class=RecordRoute)

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "title": {"type": "string", "maxLength": 500},
                        "metadata": {"type": "string", "description": "a JSON object as text"},
                    },
                }
            },
            "application/json": {"schema": TextDocument.model_json_schema()},
        },
    }
}


@router.post(
    "", status_code=201, response_model=Collection, openapi_extra=body_schema(CollectionInput)
)
async def create_collection(system: SystemDep, team: Member, body: JsonObject) -> Collection:
    """A collection: ``{name, description?, embedder?, dimension?, metadata_fields?,
    chunk_tokens?, chunk_overlap?}``; ``metadata_fields`` maps names to string/int/float/bool
    and makes them filterable."""
    return await system.knowledge.create_collection(team.team_id, body)


@router.get("", response_model=Page[Collection])
async def list_collections(
    system: SystemDep, team: Viewer, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    items, total = await system.knowledge.list_collections(team.team_id, limit=limit, offset=offset)
    return page(items, total, limit, offset)


@router.get("/{collection_id}", response_model=CollectionStats)
async def get_collection(
    system: SystemDep, team: Viewer, collection_id: ResourceId
) -> CollectionStats:
    """By id or name, with its documents counted by status."""
    collection = await system.knowledge.get_collection(team.team_id, collection_id)
    return await system.knowledge.collection_stats(team.team_id, collection)


@router.delete("/{collection_id}", status_code=204, response_class=Response)
async def delete_collection(system: SystemDep, team: Member, collection_id: ResourceId) -> Response:
    await system.knowledge.delete_collection(team.team_id, collection_id)
    return Response(status_code=204)


@router.post(
    "/{collection_id}/documents",
    status_code=202,
    responses={
        200: {"model": UploadedDocument, "description": "the same bytes again: the first one"},
        202: {"model": UploadedDocument, "description": "accepted: the PENDING document"},
    },
    openapi_extra=UPLOAD_BODY,
)
async def add_document(
    system: SystemDep, team: Member, collection_id: ResourceId, request: Request
) -> JSONResponse:
    """Upload a file (``multipart/form-data``: ``file``, optional ``title`` and ``metadata``
    as JSON text) or raw text (JSON ``{title, text, file_name?, mime_type?, metadata?}``).
    202 and the PENDING document; watch ``GET …/documents/{id}`` for progress. The same
    bytes again answer 200 with the existing document."""
    doc, created = await upload_document(system.knowledge, team.team_id, collection_id, request)
    if created:
        await system.runs.ingest(team.team_id, doc["id"])
    return JSONResponse({**doc, "duplicate": not created}, status_code=202 if created else 200)


@router.get("/{collection_id}/documents", response_model=Page[Document])
async def list_documents(
    system: SystemDep,
    team: Viewer,
    collection_id: ResourceId,
    status: Annotated[DocumentStatus | None, Query()] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    items, total = await system.knowledge.list_documents(
        team.team_id,
        collection_id,
        status=status.value if status else None,
        limit=limit,
        offset=offset,
    )
    return page(items, total, limit, offset)


@router.get("/{collection_id}/documents/{doc_id}", response_model=Document)
async def get_document(
    system: SystemDep,
    team: Viewer,
    collection_id: ResourceId,
    doc_id: ResourceId,
    chunks: Annotated[bool, Query(description="include the chunks' text")] = False,
) -> dict[str, Any]:
    return await system.knowledge.get_document(team.team_id, collection_id, doc_id, chunks=chunks)


@router.delete("/{collection_id}/documents/{doc_id}", status_code=204, response_class=Response)
async def delete_document(
    system: SystemDep, team: Member, collection_id: ResourceId, doc_id: ResourceId
) -> Response:
    await system.knowledge.delete_document(team.team_id, collection_id, doc_id)
    return Response(status_code=204)


@router.post(
    "/{collection_id}/documents/{doc_id}/reindex", status_code=202, response_model=Document
)
async def reindex_document(
    system: SystemDep, team: Member, collection_id: ResourceId, doc_id: ResourceId
) -> dict[str, Any]:
    """Ingest the document again (409 while it is being ingested)."""
    doc = await system.knowledge.mark_for_reindex(team.team_id, collection_id, doc_id)
    await system.runs.ingest(team.team_id, doc_id)
    return doc


@router.post("/{collection_id}/search", response_model=SearchResults)
async def search(
    system: SystemDep, team: Viewer, collection_id: ResourceId, body: SearchRequest
) -> dict[str, Any]:
    """Chunks as citations ``{document_id, title, file_name, page_numbers, rank, score,
    text}``, best first; ``filter`` is an expression or a JSON object over the collection's
    fields."""
    results = await system.knowledge.search(
        team.team_id,
        collection_id,
        query=body.query,
        vector=body.vector,
        top_k=body.top_k,
        filter=body.filter,
        min_score=body.min_score,
        embedder=body.embedder,
        caller={"type": "api", "endpoint": "knowledge.search"},
    )
    return {"collection": collection_id, "results": results}
