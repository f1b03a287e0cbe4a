"""The LangGraph Platform API's chat subset at the root path, so the official ``langgraph-sdk``
client works against Linqra unchanged (``docs/langgraph.md`` has the mapping and the limits).

An *assistant* is our assistant (``graph_id`` ``"chat"``); a *thread* is a conversation; a
*run* is a chat run, started, streamed, joined and cancelled through
:class:`~linqra.assistants.chat.ChatService` like every other chat surface. A thread made with
``POST /threads`` has no assistant until its first run names one: it is a small record
(``langgraph_threads``) that the first run binds to the conversation it creates; a conversation
id is a thread id as it is. The streams translate the run's event log into LangGraph's events
(``metadata``, ``values``, ``updates``, ``messages``, ``error``, ``end``); each event carries the
log's id, so ``Last-Event-ID`` resumes, and a streaming answer says where to reconnect in its
``Location`` header, as the LangGraph server does.
"""

import asyncio
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sse_starlette import EventSourceResponse

import deployments.routers._langgraph_wire as wire
from deployments.auth import Runner, Viewer
from deployments.deps import ResourceId, SystemDep
from deployments.routers._langgraph_wire import GRAPH_ID, STREAM_MODES, RunRef
from deployments.schemas import RecordRoute
from linqra.assistants.chat import ChatRequest, parse_event_id
from linqra.auth.principal import Principal
from linqra.clock import iso, monotonic, new_id, utcnow
from linqra.errors import Conflict, NotFound, ValidationError
from linqra.system import System

__all__ = ["THREADS", "router"]

router = APIRouter(tags=["langgraph"], route_class=RecordRoute)
THREADS = "langgraph_threads"
CLAIM_WAIT_SECONDS = 10.0  # how long a thread's second first run waits for the first one
STALE_CLAIM = timedelta(seconds=30)  # a claim its process never finished (it died)
_UNSUPPORTED = (
    "command",
    "checkpoint",
    "checkpoint_id",
    "interrupt_before",
    "interrupt_after",
    "webhook",
    "after_seconds",
    "feedback_keys",
)
JSON_OBJECT = {"application/json": {"schema": {"type": "object"}}}
EMPTY = {"text/plain": {"schema": {"type": "string", "maxLength": 0}}}
EVENTS = {"text/event-stream": {"schema": {"type": "string", "description": "LangGraph SSE"}}}


class RunCreate(BaseModel):
    """A LangGraph run: ``input.messages`` holds the one user message; the other fields the
    SDK sends that change nothing here (``config``, ``context``, ``metadata``, ``durability``,
    …) are accepted; those asking for graph features are refused naming the field."""

    model_config = ConfigDict(extra="allow")
    assistant_id: str = Field(min_length=1, max_length=128)
    input: dict[str, Any] | None = None
    stream_mode: list[str] = Field(default_factory=lambda: ["values"])
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] | None = None
    on_disconnect: Literal["cancel", "continue"] | None = None
    if_not_exists: Literal["create", "reject"] | None = None
    on_completion: Literal["keep"] | None = None
    stream_subgraphs: Literal[False] = False

    @field_validator("stream_mode", mode="before")
    @classmethod
    def _modes(cls, value: Any) -> list[str]:
        return wire.stream_modes(value if isinstance(value, list) else [value])


class ThreadCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    thread_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[\w.:-]+$")
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    supersteps: None = None
    ttl: None = None


class AssistantSearch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[str] | None = None


class LGAssistant(BaseModel):
    model_config = ConfigDict(extra="allow")
    assistant_id: str
    graph_id: str
    name: str
    created_at: str
    updated_at: str


class LGThread(BaseModel):
    model_config = ConfigDict(extra="allow")
    thread_id: str
    status: Literal["idle", "busy", "interrupted", "error"]
    metadata: dict[str, Any]
    values: dict[str, Any] | None


class LGRun(BaseModel):
    model_config = ConfigDict(extra="allow")
    run_id: str
    thread_id: str
    assistant_id: str
    status: Literal["pending", "running", "error", "success", "timeout", "interrupted"]
    multitask_strategy: str | None


# -- assistants --------------------------------------------------------------------------------
@router.post("/assistants/search", response_model=list[dict[str, Any]])
async def search_assistants(
    system: SystemDep, team: Viewer, body: AssistantSearch, response: Response
) -> list[dict[str, Any]]:
    """The team's assistants (``graph_id`` ``chat``; ``name`` a case-insensitive substring;
    ``metadata`` ``{"status": …}``); ``X-Pagination-Next`` when there are more."""
    found = [wire.assistant_view(a) for a in await wire.all_assistants(system, team.team_id)]
    want = body.metadata or {}
    found = [
        a
        for a in found
        if body.graph_id in (None, GRAPH_ID)
        and (body.name or "").lower() in a["name"].lower()
        and all(a["metadata"].get(k) == v for k, v in want.items())
    ]
    key = body.sort_by or "created_at"
    found.sort(key=lambda a: str(a[key]), reverse=(body.sort_order or "desc") == "desc")
    end = body.offset + body.limit
    if end < len(found):
        response.headers["X-Pagination-Next"] = str(end)
    page = found[body.offset : end]
    return [{k: a[k] for k in body.select if k in a} for a in page] if body.select else page


@router.get("/assistants/{assistant_id}", response_model=LGAssistant)
async def get_assistant(system: SystemDep, team: Viewer, assistant_id: ResourceId) -> Any:
    return wire.assistant_view(await system.assistants.get(team.team_id, assistant_id))


# -- threads -----------------------------------------------------------------------------------
@router.post("/threads", response_model=LGThread)
async def create_thread(system: SystemDep, team: Runner, body: ThreadCreate) -> Any:
    """A thread; its assistant is the one its first run names. ``if_exists``: ``raise`` (409)
    or ``do_nothing`` (the existing thread)."""
    thread_id = body.thread_id or new_id("thread")
    made = await _make_thread(system, team.team_id, thread_id, body.metadata)
    if not made and body.if_exists == "raise":
        raise Conflict(f"thread {thread_id!r} already exists", field="thread_id")
    return await _thread_view(system, team.team_id, thread_id)


@router.get("/threads/{thread_id}", response_model=LGThread)
async def get_thread(system: SystemDep, team: Viewer, thread_id: ResourceId) -> Any:
    return await _thread_view(system, team.team_id, thread_id)


@router.get("/threads/{thread_id}/state", response_model=dict[str, Any])
async def get_thread_state(system: SystemDep, team: Viewer, thread_id: ResourceId) -> Any:
    """``values.messages``: the conversation's finished messages as LangChain message dicts."""
    thread = await _existing(system, team.team_id, thread_id)
    messages = await wire.messages(system.chat, team.team_id, thread.get("conversation_id"))
    checkpoint = messages[-1]["id"] if messages else None
    return {
        "values": {"messages": messages},
        "next": [],
        "tasks": [],
        "checkpoint": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": checkpoint},
        "metadata": thread.get("metadata") or {},
        "created_at": thread.get("updated_at") or thread.get("created_at"),
        "parent_checkpoint": None,
        "interrupts": [],
    }


# -- runs --------------------------------------------------------------------------------------
@router.post("/threads/{thread_id}/runs", response_model=LGRun)
async def create_run(
    system: SystemDep, team: Runner, thread_id: ResourceId, body: RunCreate, response: Response
) -> Any:
    """A background run: answered at once with the run, which goes on without a client."""
    ref, run, _ = await _start(system, team, thread_id, body)
    response.headers["Content-Location"] = ref.path
    return wire.run_view(run, ref.thread_id)


@router.post(
    "/threads/{thread_id}/runs/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": EVENTS}},
)
async def stream_run(
    system: SystemDep, team: Runner, thread_id: ResourceId, body: RunCreate
) -> EventSourceResponse:
    """A run streamed in ``stream_mode`` (``values``, ``updates``, ``messages-tuple``)."""
    return await _stream_new(system, team, thread_id, body)


@router.post(
    "/runs/stream", response_class=EventSourceResponse, responses={200: {"content": EVENTS}}
)
async def stream_stateless_run(
    system: SystemDep, team: Runner, body: RunCreate
) -> EventSourceResponse:
    """A run on a new thread (a new conversation, kept: ``on_completion`` is ``keep``)."""
    return await _stream_new(system, team, None, body)


@router.post("/threads/{thread_id}/runs/wait", responses={200: {"content": JSON_OBJECT}})
async def wait_run(
    system: SystemDep, team: Runner, thread_id: ResourceId, body: RunCreate
) -> StreamingResponse:
    """The thread's state values once the run ends (``{"__error__": …}`` if it failed)."""
    return await _wait_new(system, team, thread_id, body)


@router.post("/runs/wait", responses={200: {"content": JSON_OBJECT}})
async def wait_stateless_run(system: SystemDep, team: Runner, body: RunCreate) -> StreamingResponse:
    return await _wait_new(system, team, None, body)


@router.get("/threads/{thread_id}/runs/{run_id}", response_model=LGRun)
async def get_run(
    system: SystemDep, team: Viewer, thread_id: ResourceId, run_id: ResourceId
) -> Any:
    ref = await _ref(system, team.team_id, thread_id, run_id)
    return wire.run_view(
        await system.chat.run(team.team_id, ref.conversation_id, run_id), thread_id
    )


@router.get("/threads/{thread_id}/runs/{run_id}/join", responses={200: {"content": JSON_OBJECT}})
async def join_run(
    system: SystemDep, team: Viewer, thread_id: ResourceId, run_id: ResourceId
) -> StreamingResponse:
    """Wait for the run to end; the thread's state values then."""
    ref = await _ref(system, team.team_id, thread_id, run_id)
    keepalive = system.settings.chat.keepalive_seconds
    return wire.waiting(
        lambda: wire.final_values(system.chat, team.team_id, ref), keepalive=keepalive
    )


@router.get(
    "/threads/{thread_id}/runs/{run_id}/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": EVENTS}},
)
async def join_stream(
    request: Request,
    system: SystemDep,
    team: Viewer,
    thread_id: ResourceId,
    run_id: ResourceId,
    cancel_on_disconnect: bool = False,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="<run>:<seq> seen last; -1: all")
    ] = None,
) -> EventSourceResponse:
    """The run's events after ``Last-Event-ID`` (all without it), then live until it ends; in
    the ``stream_mode`` query values (default: all three)."""
    modes = wire.stream_modes([m for m in request.query_params.getlist("stream_mode") if m])
    modes = modes or list(STREAM_MODES)
    after = 0 if last_event_id == "-1" else parse_event_id(last_event_id, run_id)
    ref = await _ref(system, team.team_id, thread_id, run_id)
    return wire.event_stream(
        system.chat, team.team_id, ref, modes, after, cancel_on_disconnect=cancel_on_disconnect
    )


@router.post(
    "/threads/{thread_id}/runs/{run_id}/cancel",
    status_code=202,
    response_class=Response,
    responses={
        202: {"description": "under way (empty, as LangGraph answers)", "content": EMPTY},
        204: {"description": "with wait: the run has stopped"},
    },
)
async def cancel_run(
    system: SystemDep,
    team: Runner,
    thread_id: ResourceId,
    run_id: ResourceId,
    wait: bool = False,
    action: Annotated[str, Query(max_length=20)] = "interrupt",
) -> Response:
    """Stop the run (its partial reply kept); ``wait=1``: 204 once stopped. No
    ``action=rollback``: send the next run with ``multitask_strategy: rollback``."""
    if action != "interrupt":
        raise ValidationError("action must be interrupt", field="action")
    ref = await _ref(system, team.team_id, thread_id, run_id)
    await system.chat.cancel(team.team_id, ref.conversation_id, run_id)
    if wait:
        await wire.final_values(system.chat, team.team_id, ref)
    return Response(status_code=204 if wait else 202)


# -- inside: threads ---------------------------------------------------------------------------
async def _existing(system: System, team_id: str, thread_id: str) -> dict[str, Any]:
    """The thread's record; a conversation's id is a thread with no record of its own."""
    doc = await system.store.get(THREADS, team_id, thread_id)
    if doc is not None:
        if doc.get("conversation_id"):  # 404 once its conversation is deleted
            await _conversation(system, team_id, doc["conversation_id"], thread_id)
        return doc
    conversation = await _conversation(system, team_id, thread_id, thread_id)
    return {"id": thread_id, "conversation_id": thread_id, "metadata": {}, **conversation}


async def _make_thread(
    system: System, team_id: str, thread_id: str, metadata: dict[str, Any]
) -> bool:
    """Record a new thread; ``False`` when ``thread_id`` is already a thread."""
    try:
        await _existing(system, team_id, thread_id)
        return False
    except NotFound:
        pass
    doc = {"id": thread_id, "conversation_id": None, "claim": None, "metadata": metadata}
    try:
        await system.store.insert(THREADS, team_id, {**doc, "created_at": iso()})
    except Conflict:
        return False
    return True


async def _conversation(
    system: System, team_id: str, conversation_id: str, thread_id: str
) -> dict[str, Any]:
    try:
        found = await system.chat.deps.conversations.get(team_id, conversation_id)
    except NotFound:
        raise NotFound(f"thread {thread_id!r} not found", field="thread_id") from None
    return {"created_at": found.created_at, "updated_at": found.updated_at}


async def _thread_view(system: System, team_id: str, thread_id: str) -> dict[str, Any]:
    doc = await _existing(system, team_id, thread_id)
    conversation_id = doc.get("conversation_id")
    meta = {**(doc.get("metadata") or {}), "graph_id": GRAPH_ID}
    busy = False
    if conversation_id:
        repo = system.chat.deps.conversations
        meta |= {"conversation_id": conversation_id}
        meta["assistant_id"] = (await repo.get(team_id, conversation_id)).assistant_id
        busy = bool(await repo.active_runs(team_id, conversation_id))
    messages = await wire.messages(system.chat, team_id, conversation_id)
    return {
        "thread_id": thread_id,
        "created_at": doc["created_at"],
        "updated_at": doc.get("updated_at") or doc["created_at"],
        "metadata": meta,
        "status": "busy" if busy else "idle",
        "config": {},
        "values": {"messages": messages} if conversation_id else None,
        "interrupts": {},
    }


async def _ref(system: System, team_id: str, thread_id: str, run_id: str) -> RunRef:
    conversation_id = (await _existing(system, team_id, thread_id)).get("conversation_id")
    if not conversation_id:
        raise NotFound(f"run {run_id!r} not found", field="run_id")
    run = await system.chat.run(team_id, conversation_id, run_id)  # 404 for another thread's
    return RunRef(thread_id, conversation_id, run_id, run.get("user_message_id"))


# -- inside: starting a run --------------------------------------------------------------------
async def _start(
    system: System, team: Principal, thread_id: str | None, body: RunCreate
) -> tuple[RunRef, dict[str, Any], str]:
    """Check ``body``, send its message (binding a new thread to the conversation it starts);
    the run, where it is, and what a disconnect does."""
    for name in _UNSUPPORTED:
        if (body.model_extra or {}).get(name) not in (None, [], {}):
            raise ValidationError(f"{name} is not supported by Linqra's chat graph", field=name)
    text, client_message_id = wire.user_message(body.input)
    chat, executed_by = system.chat, team.executed_by(None)
    request = chat.parse(
        {
            "message": text,
            "clientMessageId": client_message_id,
            "doubleTexting": body.multitask_strategy,
            "onDisconnect": body.on_disconnect,
        }
    )
    if thread_id is None:
        if body.assistant_id == GRAPH_ID:
            raise ValidationError("name the assistant's id for a new thread", field="assistant_id")
        started = await chat.send(
            team.team_id, request, assistant_id=body.assistant_id, executed_by=executed_by
        )
        thread_id = started["conversation_id"]
    else:
        if body.if_not_exists == "create":
            await _make_thread(system, team.team_id, thread_id, {})
        started = await _send_on_thread(
            system, team.team_id, thread_id, body.assistant_id, request, executed_by
        )
    run = started["run"]
    ref = RunRef(thread_id, started["conversation_id"], run["id"], run.get("user_message_id"))
    return ref, run, started["on_disconnect"]


async def _send_on_thread(
    system: System,
    team_id: str,
    thread_id: str,
    assistant_id: str,
    request: ChatRequest,
    executed_by: str | None,
) -> dict[str, Any]:
    """Send on a thread. Its first run claims the thread (a compare-and-set), creates the
    conversation and binds it; a concurrent first run waits for that and follows it."""
    chat, store = system.chat, system.store
    deadline = monotonic() + CLAIM_WAIT_SECONDS
    while True:
        thread = await _existing(system, team_id, thread_id)
        if conversation_id := thread.get("conversation_id"):
            own = (await chat.deps.conversations.get(team_id, conversation_id)).assistant_id
            if assistant_id not in (GRAPH_ID, own):
                raise ValidationError(
                    f"thread {thread_id!r} belongs to assistant {own!r}", field="assistant_id"
                )
            request = request.model_copy(update={"conversationId": conversation_id})
            return await chat.send(team_id, request, executed_by=executed_by)
        if assistant_id == GRAPH_ID:
            raise ValidationError("a thread's first run names its assistant", field="assistant_id")
        claim, stale = thread.get("claim"), iso(utcnow() - STALE_CLAIM)
        token = new_id("claim")
        if (claim is None or (thread.get("claimed_at") or "") < stale) and await store.update(
            THREADS,
            team_id,
            thread_id,
            {"claim": token, "claimed_at": iso()},
            where={"conversation_id": None, "claim": claim},
        ):
            try:
                started = await chat.send(
                    team_id, request, assistant_id=assistant_id, executed_by=executed_by
                )
            except BaseException:
                await store.update(
                    THREADS, team_id, thread_id, {"claim": None}, where={"claim": token}
                )
                raise
            bound = {
                "conversation_id": started["conversation_id"],
                "claim": None,
                "updated_at": iso(),
            }
            await store.update(THREADS, team_id, thread_id, bound)
            return started
        if monotonic() > deadline:
            raise Conflict("the thread's first run is still starting", field="thread_id")
        await asyncio.sleep(0.05)


async def _stream_new(
    system: System, team: Principal, thread_id: str | None, body: RunCreate
) -> EventSourceResponse:
    ref, _, on_disconnect = await _start(system, team, thread_id, body)
    query = urlencode([("stream_mode", m) for m in body.stream_mode])
    headers = {"Content-Location": ref.path, "Location": f"{ref.path}/stream?{query}"}
    return wire.event_stream(
        system.chat,
        team.team_id,
        ref,
        body.stream_mode,
        0,
        cancel_on_disconnect=on_disconnect == "cancel",
        headers=headers,
    )


async def _wait_new(
    system: System, team: Principal, thread_id: str | None, body: RunCreate
) -> StreamingResponse:
    ref, _, _ = await _start(system, team, thread_id, body)
    return wire.waiting(
        lambda: wire.final_values(system.chat, team.team_id, ref),
        keepalive=system.settings.chat.keepalive_seconds,
        headers={"Content-Location": ref.path, "Location": f"{ref.path}/join"},
    )
