"""Chat with assistants: ``/v1/assistants/{id}/chat`` and ``/v1/conversations…``.

A message answers as server-sent events when the client asks (``Accept: text/event-stream`` or
``"stream": true``), else as JSON once the reply is complete. Each event has a name and the id
``<run>:<seq>``; ``GET …/runs/{run}/stream`` replays from ``Last-Event-ID`` and follows the run
live, on any replica. A client that goes away mid-stream leaves the reply running unless the
message (or its assistant) said ``onDisconnect: cancel``.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from deployments.auth import Member, Require, Runner, Viewer, identify
from deployments.deps import JsonObject, Limit, Offset, ResourceId, SystemDep, page
from deployments.routers.widget import public_assistant
from deployments.schemas import SSE_CONTENT, SSE_HEADERS, Page, RecordRoute, body_schema
from linqra.assistants.chat import ChatRequest, ChatService, parse_event_id
from linqra.assistants.conversations import ChatRun, Conversation, Message
from linqra.assistants.runlog import RunEvent
from linqra.assistants.turn import TERMINAL_EVENTS
from linqra.auth.principal import Permission, Principal
from linqra.errors import Forbidden, LinqraError, ValidationError
from linqra.system import System

__all__ = ["router"]

router = APIRouter(tags=["chat"], route_class=RecordRoute)
# the chat routes a public widget key may call, for its own assistant and visitor (below)
ChatCaller = Annotated[Principal, Depends(Require(Permission.EXECUTE, widget=True))]
WidgetReader = Annotated[Principal, Depends(Require(Permission.READ, widget=True))]
VisitorToken = Annotated[
    str | None,
    Header(
        alias="X-Conversation-Token",
        description="widget keys only: the token the conversation's first answer gave",
    ),
]
CHAT_BODY = body_schema(ChatRequest)
EVENTS = SSE_CONTENT
SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": EVENTS, "description": "the reply as JSON, or as events when asked"}
}


class ChatReply(BaseModel):
    """A finished turn (the JSON answer of a chat message)."""

    model_config = ConfigDict(extra="allow")
    conversation_id: str
    run_id: str
    status: str = Field(description="completed, cancelled, failed or interrupted")
    message_id: str | None = None
    content: str = ""
    citations: list[dict[str, Any]] = Field(default_factory=list)
    task_results: list[dict[str, Any]] = Field(default_factory=list)
    usage: dict[str, Any] | None = None
    cost: str | None = None
    currency: str | None = None
    model: str | None = None
    error: dict[str, Any] | None = None
    conversation_token: str | None = Field(
        default=None, description="widget keys: send it back as X-Conversation-Token"
    )


class Rename(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)


@router.post(
    "/v1/assistants/{assistant_id}/chat",
    response_model=ChatReply,
    responses=SSE,
    openapi_extra=CHAT_BODY,
)
async def chat(
    request: Request,
    system: SystemDep,
    team: ChatCaller,
    assistant_id: ResourceId,
    body: JsonObject,
    token: VisitorToken = None,
) -> Any:
    """A message for the assistant: a new conversation, or ``conversationId``'s. The first
    event (``run.created``) carries the conversation's id.

    A public widget key may call it for the one assistant it is bound to: its answer carries
    ``X-Conversation-Token`` (and ``conversation_token`` in JSON), which the same visitor sends
    back to continue the conversation, follow or cancel its runs; no other visitor can."""
    team.require_resource(assistant_id)
    if team.source == "widget":
        await public_assistant(system, team, request, assistant_id)
        if isinstance(body.get("conversationId"), str):
            _visitor(system, team, body["conversationId"], token)
    return await _send(request, system, team, body, assistant_id=assistant_id)


@router.post(
    "/v1/conversations/{conversation_id}/messages",
    response_model=ChatReply,
    responses=SSE,
    openapi_extra=CHAT_BODY,
)
async def send_message(
    request: Request,
    system: SystemDep,
    team: Runner,
    conversation_id: ResourceId,
    body: JsonObject,
) -> Any:
    """The next message of a conversation (its assistant answers)."""
    return await _send(request, system, team, {**body, "conversationId": conversation_id})


@router.get("/v1/conversations", response_model=Page[Conversation])
async def list_conversations(
    system: SystemDep,
    team: Viewer,
    assistant_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The team's conversations, newest first."""
    items, total = await system.chat.deps.conversations.list(
        team.team_id, assistant_id=assistant_id, limit=limit, offset=offset
    )
    return page(items, total, limit, offset)


@router.get("/v1/conversations/{conversation_id}", response_model=Conversation)
async def get_conversation(
    system: SystemDep, team: Viewer, conversation_id: ResourceId
) -> Conversation:
    """A conversation with its totals (tokens by kind, cost)."""
    return await system.chat.deps.conversations.get(team.team_id, conversation_id)


@router.patch("/v1/conversations/{conversation_id}", response_model=Conversation)
async def rename_conversation(
    system: SystemDep, team: Member, conversation_id: ResourceId, body: Rename
) -> Conversation:
    return await system.chat.deps.conversations.rename(team.team_id, conversation_id, body.title)


@router.delete("/v1/conversations/{conversation_id}", status_code=204, response_class=Response)
async def delete_conversation(
    system: SystemDep, team: Member, conversation_id: ResourceId
) -> Response:
    """Hidden from now on, with its messages."""
    await system.chat.deps.conversations.delete(team.team_id, conversation_id)
    return Response(status_code=204)


@router.get("/v1/conversations/{conversation_id}/messages", response_model=Page[Message])
async def list_messages(
    system: SystemDep,
    team: Viewer,
    conversation_id: ResourceId,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Messages oldest first, each with its status, model, usage, cost, citations and task
    results."""
    repo = system.chat.deps.conversations
    await repo.get(team.team_id, conversation_id)  # 404 for another team's
    items, total = await repo.messages(team.team_id, conversation_id, limit=limit, offset=offset)
    return page(items, total, limit, offset)


@router.get("/v1/conversations/{conversation_id}/runs/{run_id}", response_model=ChatRun)
async def get_run(
    system: SystemDep, team: Viewer, conversation_id: ResourceId, run_id: ResourceId
) -> dict[str, Any]:
    return await system.chat.run(team.team_id, conversation_id, run_id)


@router.get(
    "/v1/conversations/{conversation_id}/runs/{run_id}/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": EVENTS, "description": "the run's events"}},
)
async def stream_run(
    system: SystemDep,
    team: WidgetReader,
    conversation_id: ResourceId,
    run_id: ResourceId,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="<run>:<seq> seen last")
    ] = None,
    token: VisitorToken = None,
) -> EventSourceResponse:
    """The run's events after ``Last-Event-ID`` (all of them without it), then live until the
    run ends."""
    _visitor(system, team, conversation_id, token)
    after = parse_event_id(last_event_id, run_id)
    await system.chat.run(team.team_id, conversation_id, run_id)
    return _events(system.chat, team.team_id, conversation_id, run_id, after, on_disconnect=None)


@router.post("/v1/conversations/{conversation_id}/runs/{run_id}/cancel", response_model=ChatRun)
async def cancel_run(
    system: SystemDep,
    team: ChatCaller,
    conversation_id: ResourceId,
    run_id: ResourceId,
    token: VisitorToken = None,
) -> dict[str, Any]:
    """Stop the reply wherever it runs: the provider's stream is closed, running tasks are
    cancelled, the partial reply is kept with its cost. A finished run is returned as it is."""
    _visitor(system, team, conversation_id, token)
    return await system.chat.cancel(team.team_id, conversation_id, run_id)


@router.websocket("/v1/conversations/{conversation_id}/ws")
async def conversation_socket(websocket: WebSocket, conversation_id: str) -> None:
    """The conversation over a WebSocket: the same events as the SSE routes, as JSON frames
    ``{"type": "event", "id", "event", "data"}``. The client sends ``{"type": "send",
    "message", "clientMessageId"?, "doubleTexting"?, "onDisconnect"?}``, ``{"type": "cancel",
    "run_id"}``, ``{"type": "resume", "run_id", "last_event_id"?}`` and ``{"type": "ping"}``
    (answered ``pong``). A frame that is not JSON, or of an unknown type, is answered with an
    ``error`` frame and the socket stays open. Who may: the ``execute`` permission, from the
    same credentials as any route (headers; ``?team=`` may stand for ``X-Team-Id``, which
    browsers cannot set on a WebSocket)."""
    system = websocket.app.state.system
    try:
        team = await _socket_principal(websocket)
        await system.chat.deps.conversations.get(team.team_id, conversation_id)
    except LinqraError as exc:  # refused with its status: accepted first, since a close before
        await websocket.accept()  # the handshake reaches a browser as a bare HTTP 403
        await websocket.close(code=4000 + exc.status, reason=exc.message[:120])
        return
    await websocket.accept()
    await _Socket(websocket, system.chat, team, conversation_id).serve()


# -- inside ------------------------------------------------------------------------------------
def _visitor(system: System, team: Principal, conversation_id: str, token: str | None) -> None:
    """A widget key's caller must hold the conversation's visitor token (404 otherwise, as for
    another team's id); team credentials need none."""
    if team.source == "widget":
        keys = system.authenticator.keys
        keys.check_visitor(team.key_id or "", conversation_id, token)


async def _send(
    request: Request,
    system: System,
    team: Principal,
    body: dict[str, Any],
    *,
    assistant_id: str | None = None,
) -> Any:
    chat = system.chat
    parsed = chat.parse(body)
    started = await chat.send(
        team.team_id, parsed, assistant_id=assistant_id, executed_by=team.executed_by(None)
    )
    run, conversation_id = started["run"], started["conversation_id"]
    headers = {}
    if team.source == "widget":
        token = system.authenticator.keys.visitor_token(team.key_id or "", conversation_id)
        headers["X-Conversation-Token"] = token
    streaming = parsed.stream or "text/event-stream" in request.headers.get("accept", "")
    if streaming:
        response = _events(
            chat,
            team.team_id,
            conversation_id,
            run["id"],
            0,
            on_disconnect=started["on_disconnect"],
        )
        response.headers.update(headers)
        return response
    wait = system.settings.http.wait_timeout_seconds
    reply = {
        **(await chat.reply(team.team_id, run["id"], wait)),
        "conversation_id": conversation_id,
        "run_id": run["id"],
    }
    if headers:
        reply["conversation_token"] = headers["X-Conversation-Token"]
    if reply["status"] == "running":  # still writing after the wait: 202 with the text so far
        return JSONResponse(
            ChatReply.model_validate(reply).model_dump(), status_code=202, headers=headers
        )
    if headers:
        return JSONResponse(ChatReply.model_validate(reply).model_dump(), headers=headers)
    return reply


def _events(
    chat: ChatService,
    team_id: str,
    conversation_id: str,
    run_id: str,
    after: int,
    *,
    on_disconnect: str | None,
) -> EventSourceResponse:
    async def stream() -> AsyncIterator[bytes]:
        finished = False
        try:
            async for batch in chat.event_batches(team_id, run_id, after):
                if batch is None:
                    continue  # the response's own pings keep the connection alive
                finished = batch[-1].event in _TERMINAL
                yield b"".join(map(_encoded, batch))  # what piled up goes in one write
        except LinqraError as exc:  # the log's store went away mid-stream: say so, then stop
            finished = True  # the client is still there: not a disconnect
            yield ServerSentEvent(json.dumps(exc.to_dict()), event="error").encode()
        finally:
            if not finished and on_disconnect == "cancel":  # the client went away
                with contextlib.suppress(Exception):
                    await asyncio.shield(chat.cancel(team_id, conversation_id, run_id))

    return EventSourceResponse(
        stream(),
        ping=chat.deps.settings.keepalive_seconds,
        headers=SSE_HEADERS,
    )


_TERMINAL = TERMINAL_EVENTS


def _encoded(event: RunEvent) -> bytes:
    data = json.dumps(event.data, separators=(",", ":"), default=str)
    return ServerSentEvent(data, event=event.event, id=event.id).encode()


MAX_FRAME_CHARS = 1_100_000  # a message at chat.max_message_chars, escaped, fits


async def _socket_principal(websocket: WebSocket) -> Principal:
    """The caller of a WebSocket, as a request's is found (:func:`deployments.auth.identify`:
    failed sign-ins counted per address, the key's and team's limits spent), holding
    ``execute``."""
    headers = websocket.headers
    team = headers.get("x-team-id") or websocket.query_params.get("team") or None
    found, _ = await identify(websocket.app.state.system, websocket.scope, headers, team=team)
    if found.source == "widget":
        raise Forbidden("a widget key serves only its widget's chat routes")
    return found.require(Permission.EXECUTE)


class _Socket:
    """One WebSocket's loop: frames in, each run's events out (one follower task per run)."""

    def __init__(
        self, websocket: WebSocket, chat: ChatService, team: Principal, conversation_id: str
    ) -> None:
        self.ws, self.chat, self.team, self.conversation_id = websocket, chat, team, conversation_id
        self._send_lock = asyncio.Lock()
        self._followers: dict[str, asyncio.Task[None]] = {}
        self._cancel_on_close: set[str] = set()

    async def out(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_text(json.dumps(frame, separators=(",", ":"), default=str))

    async def serve(self) -> None:
        try:
            while True:
                raw = await self.ws.receive_text()
                try:
                    await self.handle(raw)
                except LinqraError as exc:
                    await self.out({"type": "error", "error": exc.to_dict()})
        except WebSocketDisconnect:
            pass
        finally:
            for task in self._followers.values():
                task.cancel()
            for run_id in self._cancel_on_close:  # onDisconnect: cancel
                with contextlib.suppress(Exception):
                    await asyncio.shield(
                        self.chat.cancel(self.team.team_id, self.conversation_id, run_id)
                    )

    async def handle(self, raw: str) -> None:
        if len(raw) > MAX_FRAME_CHARS:
            raise ValidationError(f"a frame is at most {MAX_FRAME_CHARS} characters", field="frame")
        try:
            frame = json.loads(raw)
        except ValueError:
            raise ValidationError("a frame is a JSON object", field="frame") from None
        if not isinstance(frame, dict):
            raise ValidationError("a frame is a JSON object", field="frame")
        kind = frame.pop("type", None)
        team_id = self.team.team_id
        if kind == "ping":
            await self.out({"type": "pong"})
        elif kind == "send":  # each message is a request of the team's, as over HTTP
            system = self.ws.app.state.system
            if system.settings.rate_limits.enabled:
                rule = system.rate_limits.team
                (await system.limiter.hit(rule, team_id)).raise_if_denied()
            request = self.chat.parse({**frame, "conversationId": self.conversation_id})
            started = await self.chat.send(
                team_id, request, executed_by=self.team.executed_by(None)
            )
            run_id = started["run"]["id"]
            if started["on_disconnect"] == "cancel":
                self._cancel_on_close.add(run_id)
            self.follow(run_id, 0)
        elif kind == "cancel":
            run = await self.chat.cancel(team_id, self.conversation_id, _run_id(frame))
            await self.out({"type": "run", "data": run})
        elif kind == "resume":
            run_id = _run_id(frame)
            after = parse_event_id(frame.get("last_event_id"), run_id)
            await self.chat.run(team_id, self.conversation_id, run_id)  # 404 for a foreign one
            self.follow(run_id, after)
        else:
            raise ValidationError(
                f"unknown frame type {kind!r}: send, cancel, resume or ping", field="type"
            )

    def follow(self, run_id: str, after: int) -> None:
        previous = self._followers.pop(run_id, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.get_running_loop().create_task(self._follow(run_id, after))
        self._followers[run_id] = task
        task.add_done_callback(
            lambda t: (
                self._followers.pop(run_id, None) if self._followers.get(run_id) is t else None
            )
        )

    async def _follow(self, run_id: str, after: int) -> None:
        try:
            async for event in self.chat.events(self.team.team_id, run_id, after):
                if event is not None:
                    frame = {"type": "event", "id": event.id, "event": event.event}
                    await self.out({**frame, "data": event.data})
                    if event.event in _TERMINAL:
                        self._cancel_on_close.discard(run_id)
        except LinqraError as exc:
            with contextlib.suppress(Exception):
                await self.out({"type": "error", "error": exc.to_dict()})
        except (WebSocketDisconnect, RuntimeError):  # the socket closed under us
            pass


def _run_id(frame: dict[str, Any]) -> str:
    run_id = frame.get("run_id")
    if not isinstance(run_id, str) or not 1 <= len(run_id) <= 128:
        raise ValidationError("run_id is required (the run's id)", field="run_id")
    return run_id
