"""Linqra's own entry points: ``POST /linq`` (a Linq request runs a workflow, or sends a message
to an assistant, and answers in Linqra's shape) and ``POST /api/milvus/collections/{name}/search``
(Linqra's Milvus search intent over a Knowledge Hub collection)."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from deployments.auth import Runner, Viewer
from deployments.deps import JsonObject, ResourceId, SystemDep
from deployments.schemas import LinqResponse, MilvusSearchBody, RecordRoute, body_schema
from linqra.auth.principal import Principal
from linqra.errors import ValidationError
from linqra.knowledge.models import SearchResults
from linqra.linq import (
    CHAT_FIELDS,
    INLINE_FIELDS,
    RUN_FIELDS,
    LinqChatResponse,
    LinqRequest,
    chat_response,
    fields_renamed,
    inline_definition,
    linq_response,
    parse_linq,
)
from linqra.status import EXECUTION_TERMINAL
from linqra.system import System
from linqra.validation import fields_moved

__all__ = ["router"]

router = APIRouter(tags=["linq"], route_class=RecordRoute)


@router.post(
    "/linq",
    response_model=LinqResponse | LinqChatResponse,
    responses={
        202: {
            "model": LinqResponse | LinqChatResponse,
            "description": "not finished within the wait",
        }
    },
    openapi_extra=body_schema(LinqRequest),
)
async def linq(system: SystemDep, team: Runner, body: JsonObject) -> JSONResponse:
    """Run a stored (``query.workflowId``) or inline (``query.workflow``) workflow, or send
    ``query.chat.message`` to the assistant ``query.chat.assistantId`` (``link.target:
    assistant``, ``link.action: chat``), and wait for it: 200 once it ended, 202 with what there
    is after ``http.wait_timeout_seconds``."""
    request = parse_linq(body)
    if request.query.chat is not None:
        return await _chat(system, team, request)
    definition = None
    if request.query.workflow is not None:
        with fields_moved(INLINE_FIELDS):
            definition = system.workflows.validate_definition(
                inline_definition(request), prefix="query.workflow."
            )
    with fields_moved(RUN_FIELDS):
        record = await system.runs.run_execution(
            team.team_id,
            system.settings.http.wait_timeout_seconds,
            workflow_id=request.query.workflowId,
            definition=definition,
            params=request.query.params,
            executed_by=team.executed_by(request.executedBy),
            intent=request.query.intent,
            source="linq",
        )
    status = 200 if record["status"] in EXECUTION_TERMINAL else 202
    return JSONResponse(linq_response(record), status_code=status)


async def _chat(system: System, team: Principal, request: LinqRequest) -> JSONResponse:
    """The assistant's reply through the chat service (the conversation's worker answers; the
    reply is read from the run's events, as every chat client reads it)."""
    chat, message = system.chat, request.query.chat
    assert message is not None
    with fields_renamed(CHAT_FIELDS):
        parsed = chat.parse({"message": message.message, "conversationId": message.conversationId})
        started = await chat.send(
            team.team_id,
            parsed,
            assistant_id=message.assistantId,
            executed_by=team.executed_by(request.executedBy),
        )
    run_id = started["run"]["id"]
    reply = await chat.reply(team.team_id, run_id, system.settings.http.wait_timeout_seconds)
    answer = chat_response(
        reply,
        team_id=team.team_id,
        assistant_id=started["assistant_id"],
        conversation_id=started["conversation_id"],
        run_id=run_id,
        intent=request.query.intent,
    )
    status = 202 if answer.metadata.status == "running" else 200
    return JSONResponse(answer.model_dump(mode="json"), status_code=status)


@router.post(
    "/api/milvus/collections/{name}/search",
    response_model=SearchResults,
    openapi_extra=body_schema(MilvusSearchBody),
)
async def linq_milvus_search(
    system: SystemDep, team: Viewer, name: ResourceId, body: JsonObject
) -> dict[str, Any]:
    """Linqra's Milvus search intent: ``{text|query, topK|nResults, filter?}`` →
    ``{results}``."""
    text_field = next((k for k in ("text", "query", "textField") if k in body), "text")
    top_k_field = next((k for k in ("topK", "nResults", "top_k") if k in body), "topK")
    text = body.get(text_field)
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(f"{text_field} is required (non-empty text)", field=text_field)
    with fields_moved({"query": text_field, "top_k": top_k_field}):
        results = await system.knowledge.search(
            team.team_id,
            name,
            query=text,
            top_k=body.get(top_k_field, 5),
            filter=body.get("filter"),
            caller={"type": "api", "endpoint": "milvus.search"},
        )
    return {"collection": name, "results": results}
