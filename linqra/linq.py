"""Linqra's own entry point: a "Linq request" in, a Linqra-shaped response out.

``POST /linq`` accepts two targets, in Linqra's field names:

* ``{"link": {"target": "workflow", "action": "execute"}, "query": {"intent", "params",
  "workflowId" | "workflow", "mode"?}, "executedBy"?}`` answers ``{"result": {"steps",
  "finalResult", "pendingAsyncSteps"}, "metadata": {"status", "teamId", "cacheHit",
  "workflowMetadata"}}`` as Linqra does (:func:`linq_response`).
* ``{"link": {"target": "assistant", "action": "chat"}, "query": {"intent"?, "chat":
  {"assistantId", "conversationId"?, "message", "history"?, "context"?}}}`` answers
  ``{"chatResult": {"conversationId", "assistantId", "message", "taskResults", "tokenUsage",
  "metadata": {"documents"}, …}, "metadata": {"source": "assistant", "status", …}}``
  (:func:`chat_response`). The conversation's stored messages are its history: ``history`` and
  ``context`` are accepted, as Linqra clients send them, and not used.

Other ``link.target`` values (registered services) come with the capabilities that implement
them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from linqra.errors import LinqraError, ValidationError
from linqra.status import ExecutionStatus, StepStatus
from linqra.validation import format_pydantic_error

if TYPE_CHECKING:
    pass

__all__ = [
    "CHAT_FIELDS",
    "INLINE_FIELDS",
    "RUN_FIELDS",
    "ChatResult",
    "LinqChat",
    "LinqChatResponse",
    "LinqRequest",
    "chat_response",
    "fields_renamed",
    "linq_response",
    "parse_linq",
]

_STATUS: dict[str, str] = {
    ExecutionStatus.COMPLETED: "success",
    ExecutionStatus.FAILED: "error",
    ExecutionStatus.TIMEOUT: "timeout",
    ExecutionStatus.CANCELLED: "cancelled",
}
"""An execution's status as Linqra's protocol words it (others: the status in lower case)."""

_CHAT_STATUS = {"completed": "success", "failed": "error"}
"""A chat run's status as Linqra words it (others as they are: cancelled, interrupted, running)."""

CHAT_FIELDS = {
    "message": "query.chat.message",
    "conversationId": "query.chat.conversationId",
    "conversation_id": "query.chat.conversationId",
    "assistant_id": "query.chat.assistantId",
    "status": "query.chat.assistantId",
}
"""The chat service's field names → the Linq request's (a DRAFT assistant's 409 names the id)."""

RUN_FIELDS = {"workflow_id": "query.workflowId", "params": "query.params"}
"""A workflow run's field names → the Linq request's (an unknown workflow's 404, a 413; for
:func:`linqra.validation.fields_moved`)."""


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str = Field(min_length=1, max_length=128)
    action: str = Field(min_length=1, max_length=64)


class LinqChat(BaseModel):
    """``query.chat``: a message for an assistant, in a new conversation or ``conversationId``'s."""

    model_config = ConfigDict(extra="forbid")
    assistantId: str = Field(min_length=1, max_length=128)
    conversationId: str | None = Field(default=None, max_length=100)
    message: str = Field(description="the user's message")
    history: list[dict[str, Any]] | None = Field(
        default=None, max_length=1000, description="accepted, not used: the conversation's own"
    )
    context: dict[str, Any] | None = Field(default=None, description="accepted, not used")


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intent: str | None = Field(default=None, max_length=256)
    params: dict[str, Any] = Field(default_factory=dict)
    workflowId: str | None = Field(default=None, max_length=128)
    workflow: list[dict[str, Any]] | None = None
    mode: str | None = Field(default=None, max_length=16)
    timeoutSeconds: float | None = Field(default=None, gt=0, le=7 * 86_400, allow_inf_nan=False)
    payload: Any = None
    chat: LinqChat | None = None


class LinqRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    link: Link
    query: Query
    executedBy: str | None = Field(default=None, max_length=256)


def parse_linq(body: Any) -> LinqRequest:
    """Validate a Linq request (a workflow to run, or a message for an assistant); 4xx errors
    name the field."""
    try:
        request = LinqRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        raise format_pydantic_error(exc) from None
    target, action, query = request.link.target, request.link.action, request.query
    if target == "assistant":
        if action != "chat":
            raise ValidationError(
                'link.action must be "chat" for an assistant', field="link.action"
            )
        if query.chat is None:
            raise ValidationError(
                "query.chat {assistantId, message, conversationId?} is required",
                field="query.chat",
            )
        for name in ("workflowId", "workflow"):
            if getattr(query, name) is not None:
                raise ValidationError(
                    f"query.{name} is for link.target workflow", field=f"query.{name}"
                )
        return request
    if target != "workflow":
        raise ValidationError(
            f'link.target {target!r} is not supported yet; use "workflow" or "assistant"',
            field="link.target",
        )
    if action != "execute":
        raise ValidationError('link.action must be "execute" for a workflow', field="link.action")
    if query.chat is not None:
        raise ValidationError("query.chat is for link.target assistant", field="query.chat")
    if (query.workflowId is None) == (query.workflow is None):
        raise ValidationError(
            "give exactly one of query.workflowId and query.workflow", field="query.workflow"
        )
    return request


INLINE_FIELDS = {
    "query.workflow.steps": "query.workflow",
    "query.workflow.mode": "query.mode",
    "query.workflow.timeoutSeconds": "query.timeoutSeconds",
}
""":func:`inline_definition`'s fields, validated under ``query.workflow.`` → the Linq request's
(for :func:`linqra.validation.fields_moved`)."""


def inline_definition(request: LinqRequest) -> dict[str, Any]:
    data: dict[str, Any] = {"steps": request.query.workflow}
    if request.query.mode is not None:
        data["mode"] = request.query.mode
    if request.query.timeoutSeconds is not None:
        data["timeoutSeconds"] = request.query.timeoutSeconds
    return data


def linq_response(record: dict[str, Any]) -> dict[str, Any]:
    """Linqra's response shape from a full execution record."""
    steps = record.get("steps", [])
    results = [
        {
            "step": s["step"],
            "target": s["target"],
            "result": s.get("output"),
            "async": bool(s.get("async")),
        }
        for s in steps
        if s["status"] == StepStatus.COMPLETED
    ]
    metadata = []
    for s in steps:
        entry: dict[str, Any] = {
            "step": s["step"],
            "status": "success" if s["status"] == StepStatus.COMPLETED else s["status"].lower(),
            "durationMs": round(s.get("duration_ms") or 0),
            "target": s["target"],
            "executedAt": s.get("finished_at") or s.get("started_at"),
            "async": bool(s.get("async")),
        }
        if s.get("error"):
            entry["error"] = s["error"]
        metadata.append(entry)
    return {
        "result": {
            "steps": results,
            "finalResult": record.get("result"),
            "pendingAsyncSteps": record.get("pending_async_steps") or [],
        },
        "metadata": {
            "status": _STATUS.get(record["status"], record["status"].lower()),
            "teamId": record.get("team_id"),
            "executionId": record["id"],
            "cacheHit": any(s.get("cache_hit") for s in steps),
            "workflowMetadata": metadata,
            **({"error": record["error"]} if record.get("error") else {}),
        },
    }


# -- chat ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def fields_renamed(names: Mapping[str, str]) -> Iterator[None]:
    """Re-raise a :class:`~linqra.errors.LinqraError` whose ``field`` is in ``names`` under the
    name the caller's request uses (the chat service says ``message``; ``/linq`` says
    ``query.chat.message``, the OpenAI API ``messages[2].content``)."""
    try:
        yield
    except LinqraError as exc:
        if exc.field is not None and exc.field in names:
            exc.field = names[exc.field]
        raise


class TokenUsage(BaseModel):
    """Tokens of the reply's LLM calls; ``costUsd`` as Linqra gives it (a number, when the
    catalogue's currency is USD), ``cost`` exact (decimal text) with its ``currency``."""

    promptTokens: int = 0
    completionTokens: int = 0
    totalTokens: int = 0
    costUsd: float | None = None
    cost: str | None = None
    currency: str | None = None


class ChatResult(BaseModel):
    """Linqra's ``chatResult``, plus ``runId``/``messageId`` (to read or cancel the run)."""

    conversationId: str
    assistantId: str
    runId: str
    messageId: str | None = None
    message: str = ""
    intent: str | None = None
    modelCategory: str | None = Field(default=None, description="<provider>-chat")
    modelName: str | None = None
    executedTasks: list[str] = Field(default_factory=list)
    taskResults: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="task id → {answer, documents, status, error, …}"
    )
    tokenUsage: TokenUsage = Field(default_factory=TokenUsage)
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="documents: the snippets the reply could cite"
    )


class ChatMetadata(BaseModel):
    source: str = "assistant"
    status: str = Field(description="success, error, cancelled, interrupted or running (202)")
    teamId: str
    cacheHit: bool = False
    error: dict[str, Any] | None = None


class LinqChatResponse(BaseModel):
    """``POST /linq`` with ``link.target: assistant``."""

    chatResult: ChatResult
    metadata: ChatMetadata


def chat_response(
    reply: Mapping[str, Any],
    *,
    team_id: str,
    assistant_id: str,
    conversation_id: str,
    run_id: str,
    intent: str | None = None,
) -> LinqChatResponse:
    """Linqra's chat answer from :func:`wait_reply`'s result."""
    usage = reply.get("usage") or {}
    prompt = sum(int(usage.get(k) or 0) for k in _PROMPT_KINDS)
    completion = int(usage.get("output_tokens") or 0)
    cost, currency = reply.get("cost"), reply.get("currency")
    provider, _, name = str(reply.get("model") or "").partition(":")
    tasks = [t for t in reply.get("task_results") or [] if t.get("task_id")]
    status = str(reply.get("status") or "running")
    return LinqChatResponse(
        chatResult=ChatResult(
            conversationId=conversation_id,
            assistantId=assistant_id,
            runId=run_id,
            messageId=reply.get("message_id"),
            message=reply.get("content") or "",
            intent=intent,
            modelCategory=f"{provider}-chat" if name else None,
            modelName=name or None,
            executedTasks=[t["task_id"] for t in tasks],
            taskResults={t["task_id"]: _task_result(t) for t in tasks},
            tokenUsage=TokenUsage(
                promptTokens=prompt,
                completionTokens=completion,
                totalTokens=prompt + completion,
                costUsd=float(cost) if cost is not None and currency == "USD" else None,
                cost=cost,
                currency=currency,
            ),
            metadata={"documents": [_document(c) for c in reply.get("citations") or []]},
        ),
        metadata=ChatMetadata(
            status=_CHAT_STATUS.get(status, status), teamId=team_id, error=reply.get("error")
        ),
    )


_PROMPT_KINDS = ("input_tokens", "cache_read_tokens", "cache_write_tokens")


def _task_result(task: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "answer": task.get("answer"),
        "documents": task.get("documents") or [],
        "status": task.get("status"),
        "name": task.get("name"),
        "taskExecutionId": task.get("task_execution_id"),
        "error": task.get("error"),
    }


def _document(citation: Mapping[str, Any]) -> dict[str, Any]:
    """A citation in the field names of Linqra's document hits (``rank`` is the number the
    reply cites, ``[n]``)."""
    return {
        "documentId": citation.get("document_id"),
        "title": citation.get("title"),
        "fileName": citation.get("file_name"),
        "pageNumbers": citation.get("page_numbers"),
        "collectionId": citation.get("collection"),
        "rank": citation.get("n"),
        "score": citation.get("score"),
        "chunkIndex": citation.get("chunk_index"),
        "text": citation.get("text"),
    }
