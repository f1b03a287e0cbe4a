"""LangGraph's wire format over Linqra's chat: the user's message read from a run's ``input``;
runs, assistants and LangChain message dicts as the LangGraph Platform API returns them; a chat
run's event log translated into LangGraph's server-sent events. Private to
:mod:`deployments.routers.langgraph` (the routes).

One run event becomes zero or more LangGraph events:

==================  ===========================================================================
``run.created``     ``metadata`` ``{run_id, thread_id, attempt}``; ``values`` (state with the
                    user's message)
``message.delta``   ``messages`` ``[AIMessageChunk, metadata]`` (mode ``messages-tuple``)
``message.replace`` ``messages`` ``[ai message so far, metadata]`` (an output guardrail rewrote
                    what was sent: the whole text replaces the chunks)
``run.completed``   ``updates`` ``{"chat": {"messages": [reply]}}``; ``values`` (state with the
                    reply); ``end``
``run.failed``      ``error`` ``{error, message}``
``run.cancelled``,  ``end``
``run.interrupted``
==================  ===========================================================================

The last event of each group carries the log's id ``<run>:<seq>``: a client that resumes with it
as ``Last-Event-ID`` gets the next group whole (at worst a group is sent again, never a token).
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from linqra.assistants.chat import ACTIVE_RUN, ChatService
from linqra.assistants.conversations import Message
from linqra.assistants.models import Assistant
from linqra.assistants.runlog import RunEvent
from linqra.assistants.turn import TERMINAL_EVENTS
from linqra.clock import parse_iso, utcnow
from linqra.errors import LinqraError, ValidationError
from linqra.system import System

__all__ = [
    "GRAPH_ID",
    "STREAM_MODES",
    "RunRef",
    "all_assistants",
    "assistant_view",
    "event_stream",
    "final_values",
    "messages",
    "run_view",
    "stream_modes",
    "to_json",
    "user_message",
    "waiting",
]

GRAPH_ID = "chat"
"""Every assistant's ``graph_id`` and its one node's name; as an ``assistant_id`` it means the
thread's own assistant."""
STREAM_MODES = ("values", "updates", "messages-tuple")
RUN_STATUS = {"queued": "pending", "running": "running", "completed": "success"}
RUN_STATUS |= {"failed": "error", "cancelled": "interrupted", "interrupted": "error"}
_KIND = {"user": "human", "assistant": "ai", "system": "system", "tool": "tool"}


@dataclass(frozen=True, slots=True)
class RunRef:
    """Where a run is: its thread, the conversation the thread is, the run, its user message."""

    thread_id: str
    conversation_id: str
    run_id: str
    user_message_id: str | None = None

    @property
    def path(self) -> str:
        return f"/threads/{self.thread_id}/runs/{self.run_id}"


def event_stream(
    chat: ChatService,
    team_id: str,
    ref: RunRef,
    modes: list[str],
    after: int,
    *,
    cancel_on_disconnect: bool,
    headers: Mapping[str, str] | None = None,
) -> EventSourceResponse:
    """The run's events after seq ``after`` in LangGraph's form, live until the run ends."""

    async def stream() -> AsyncIterator[ServerSentEvent]:
        finished = False
        try:
            async for event in _until_end(chat, team_id, ref, after):
                finished = event.event in TERMINAL_EVENTS
                parts = await translate(chat, team_id, ref, modes, event)
                for i, (name, data) in enumerate(parts):
                    last = i == len(parts) - 1
                    yield ServerSentEvent(to_json(data), event=name, id=event.id if last else None)
            if not finished:  # the run ended long ago and its log has expired
                yield ServerSentEvent(to_json(None), event="end")
        except LinqraError as exc:  # the log's store went away mid-stream: say so, then stop
            yield ServerSentEvent(to_json(_error(exc.code, exc.message)), event="error")
        finally:
            if not finished and cancel_on_disconnect:  # the client went away
                with contextlib.suppress(Exception):
                    await asyncio.shield(chat.cancel(team_id, ref.conversation_id, ref.run_id))

    return EventSourceResponse(
        stream(),
        ping=chat.deps.settings.keepalive_seconds,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
    )


async def translate(
    chat: ChatService, team_id: str, ref: RunRef, modes: list[str], event: RunEvent
) -> list[tuple[str, Any]]:
    """The LangGraph events one run event becomes (the table in the module docstring)."""
    name, data = event.event, event.data
    parts: list[tuple[str, Any]] = []
    if name == "run.created":
        parts.append(("metadata", {"run_id": ref.run_id, "thread_id": ref.thread_id, "attempt": 1}))
        if "values" in modes:
            parts.append(("values", await state(chat, team_id, ref, data.get("user_message_id"))))
    elif name in ("message.delta", "message.replace") and "messages-tuple" in modes:
        chunk = name == "message.delta"
        message = lc_message("ai", data.get("message_id"), data.get("text", ""), chunk=chunk)
        parts.append(("messages", [message, _tuple_metadata(ref)]))
    elif name == "run.completed":
        reply = lc_message(
            "ai", data.get("message_id"), data.get("content", ""), usage=data.get("usage")
        )
        if "updates" in modes:
            parts.append(("updates", {GRAPH_ID: {"messages": [reply]}}))
        if "values" in modes:
            parts.append(("values", await state(chat, team_id, ref, data.get("message_id"))))
        parts.append(("end", None))
    elif name == "run.failed":
        error = data.get("error") or {}
        parts.append(("error", _error(error.get("code", "failed"), error.get("message", ""))))
    elif name in TERMINAL_EVENTS:
        parts.append(("end", None))
    return parts


async def final_values(chat: ChatService, team_id: str, ref: RunRef) -> dict[str, Any]:
    """Once the run has ended: the thread's state values then, or ``{"__error__": …}`` if it
    failed (what ``/runs/wait`` and ``/join`` answer)."""
    last: RunEvent | None = None
    async for event in _until_end(chat, team_id, ref, 0):
        last = event
    if last is None:  # its log has expired: the thread's state now
        return await state(chat, team_id, ref, None)
    if last.event == "run.failed":
        error = last.data.get("error") or {}
        return {"__error__": _error(error.get("code", "failed"), error.get("message", ""))}
    return await state(chat, team_id, ref, last.data.get("message_id") or ref.user_message_id)


async def _until_end(
    chat: ChatService, team_id: str, ref: RunRef, after: int
) -> AsyncIterator[RunEvent]:
    """The run's events after ``after`` until its terminal one; or none more, once the run is
    over and its log has expired (it ended a keep-alive period ago and the log is silent)."""
    async for event in chat.events(team_id, ref.run_id, after):
        if event is not None:
            yield event
            continue
        run = await chat.run(team_id, ref.conversation_id, ref.run_id)
        ended = run.get("finished_at")
        keepalive = timedelta(seconds=chat.deps.settings.keepalive_seconds)
        if run["status"] not in ACTIVE_RUN and ended and parse_iso(ended) < utcnow() - keepalive:
            return


def waiting(
    result: Callable[[], Awaitable[dict[str, Any]]],
    *,
    keepalive: float,
    headers: Mapping[str, str] | None = None,
) -> StreamingResponse:
    """JSON that may take long, as the LangGraph server answers it: the headers at once, a
    newline every ``keepalive`` seconds (JSON allows leading whitespace), then the answer."""

    async def body() -> AsyncIterator[bytes]:
        task = asyncio.ensure_future(result())
        try:
            while not (await asyncio.wait({task}, timeout=keepalive))[0]:
                yield b"\n"
            try:
                yield to_json(task.result()).encode()
            except LinqraError as exc:  # too late for a status code
                yield to_json({"__error__": _error(exc.code, exc.message)}).encode()
        finally:
            task.cancel()

    return StreamingResponse(body(), media_type="application/json", headers=dict(headers or {}))


async def state(
    chat: ChatService, team_id: str, ref: RunRef, upto_message: str | None
) -> dict[str, Any]:
    """``{"messages": …}`` up to and including ``upto_message`` (all without one)."""
    upto = None
    if upto_message:
        upto = (await chat.deps.conversations.get_message(team_id, upto_message)).seq
    return {"messages": await messages(chat, team_id, ref.conversation_id, upto)}


async def messages(
    chat: ChatService, team_id: str, conversation_id: str | None, upto: int | None = None
) -> list[dict[str, Any]]:
    """The finished messages (those with content, however they ended) oldest first."""
    found: list[Message] = []
    while conversation_id:
        page, total = await chat.deps.conversations.messages(
            team_id, conversation_id, limit=100, offset=len(found)
        )
        found += page
        if not page or len(found) >= total or (upto is not None and found[-1].seq >= upto):
            break
    return [
        lc_message(_KIND[m.role], m.id, m.content, usage=m.usage.model_dump() if m.usage else None)
        for m in found
        if (upto is None or m.seq <= upto)
        and m.status not in ("pending", "streaming")
        and (m.content or m.status == "completed")
    ]


def user_message(data: dict[str, Any] | None) -> tuple[str, str | None]:
    """The text and id of the one user message of ``input.messages`` (a string, or a message
    as ``{"role": "user"}`` or LangChain's ``{"type": "human"}``)."""
    given = (data or {}).get("messages")
    given = [given] if isinstance(given, (str, dict)) else given
    if not isinstance(given, list) or len(given) != 1:
        raise ValidationError("input.messages holds the one user message", field="input.messages")
    message = given[0]
    if isinstance(message, str):
        return message, None
    kind = (message.get("type") or message.get("role")) if isinstance(message, dict) else None
    if kind not in ("human", "user"):
        raise ValidationError("the message's role must be user", field="input.messages[0].role")
    content = message.get("content")
    if isinstance(content, list):  # content blocks: their text
        content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
    if not isinstance(content, str) or not content:
        raise ValidationError("the message's content is text", field="input.messages[0].content")
    return content, message.get("id")


def stream_modes(modes: list[Any]) -> list[str]:
    unknown = [m for m in modes if m not in STREAM_MODES]
    if unknown:
        raise ValidationError(
            f"stream_mode {unknown[0]!r} is not offered; use {', '.join(STREAM_MODES)}",
            field="stream_mode",
        )
    return list(dict.fromkeys(modes))


def lc_message(
    kind: str, message_id: str | None, content: str, *, usage: Any = None, chunk: bool = False
) -> dict[str, Any]:
    """A LangChain message as a dict (``type`` ``human``/``ai``/…, or ``AIMessageChunk``)."""
    message: dict[str, Any] = {
        "type": "AIMessageChunk" if chunk else kind,
        "content": content,
        "id": message_id,
        "name": None,
        "additional_kwargs": {},
        "response_metadata": {},
    }
    if kind == "ai":
        message |= {"tool_calls": [], "invalid_tool_calls": [], "usage_metadata": None}
        if chunk:
            message["tool_call_chunks"] = []
        if usage:
            tokens = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
            message["usage_metadata"] = {
                "input_tokens": tokens[0],
                "output_tokens": tokens[1],
                "total_tokens": sum(tokens),
            }
    return message


def assistant_view(assistant: Assistant) -> dict[str, Any]:
    return {
        "assistant_id": assistant.id,
        "graph_id": GRAPH_ID,
        "name": assistant.name,
        "description": assistant.description,
        "config": {},
        "context": {},
        "metadata": {"status": assistant.status.value},
        "version": assistant.version,
        "created_at": assistant.created_at,
        "updated_at": assistant.updated_at or assistant.created_at,
    }


async def all_assistants(system: System, team_id: str) -> list[Assistant]:
    found: list[Assistant] = []
    while True:
        page, total = await system.assistants.list(team_id, limit=100, offset=len(found))
        found += page
        if not page or len(found) >= total:
            return found


def run_view(run: Mapping[str, Any], thread_id: str) -> dict[str, Any]:
    return {
        "run_id": run["id"],
        "thread_id": thread_id,
        "assistant_id": run["assistant_id"],
        "created_at": run["created_at"],
        "updated_at": run.get("finished_at") or run.get("started_at") or run["created_at"],
        "status": RUN_STATUS.get(str(run["status"]), "error"),
        "metadata": {},
        "kwargs": {},
        "multitask_strategy": (run.get("policy") or {}).get("double_texting"),
    }


def _tuple_metadata(ref: RunRef) -> dict[str, Any]:
    """The second half of a ``messages`` event: where in the "graph" the token came from."""
    return {
        "tags": [],
        "run_id": ref.run_id,
        "thread_id": ref.thread_id,
        "graph_id": GRAPH_ID,
        "langgraph_node": GRAPH_ID,
        "langgraph_step": 1,
    }


def _error(code: str, message: str) -> dict[str, str]:
    return {"error": code, "message": message}


def to_json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)
