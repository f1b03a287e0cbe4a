"""Chatting with an assistant: what every entry point (the chat routes, the WebSocket, ``/linq``,
the OpenAI and LangGraph surfaces) calls.

:meth:`ChatService.send` checks what it can anywhere — the assistant is chat-ready, the
conversation is the team's, the message passes the input guardrails (PII is redacted from what
is stored *and* sent) and fits the assistant's prompt beside its instructions — then hands the
message to the conversation's worker (:mod:`linqra.assistants.worker`) through the
:class:`~linqra.assistants.worker.ChatHost`, and returns the run. :meth:`ChatService.events`
reads the run's event log from any seq: the same stream whether the client is the one that sent
the message, a second tab, or a reconnect with ``Last-Event-ID``. :meth:`ChatService.cancel`
reaches the run wherever it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from linqra.assistants.conversations import RUN_ACTIVE, ChatRun
from linqra.assistants.guardrails import check_input
from linqra.assistants.prompt import check_fits
from linqra.assistants.runlog import RunEvent
from linqra.assistants.turn import TERMINAL_EVENTS, ChatDeps, assistant_budget
from linqra.assistants.worker import ChatHost, Send
from linqra.clock import new_id, utcnow
from linqra.errors import LinqraError, NotFound, ValidationError
from linqra.validation import format_pydantic_error

if TYPE_CHECKING:
    from linqra.assistants.service import AssistantService

__all__ = ["ChatRequest", "ChatService", "parse_event_id"]

ACTIVE_RUN = tuple(RUN_ACTIVE)


class ChatRequest(BaseModel):
    """A message for an assistant: ``POST /v1/assistants/{id}/chat`` (a new conversation unless
    ``conversationId``) and ``POST /v1/conversations/{id}/messages``."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, description="the user's message")
    conversationId: str | None = Field(default=None, min_length=1, max_length=100)
    clientMessageId: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="your id for this message: sending it again returns the first run",
    )
    stream: bool = Field(default=False, description="answer as server-sent events")
    doubleTexting: Literal["reject", "enqueue", "interrupt", "rollback"] | None = Field(
        default=None, description="what a message does while a reply is being written"
    )
    onDisconnect: Literal["continue", "cancel"] | None = Field(
        default=None, description="when the client goes away mid-stream: keep answering or cancel"
    )
    title: str | None = Field(default=None, max_length=200, description="a new conversation's")


class ChatService:
    def __init__(self, deps: ChatDeps, assistants: AssistantService, host: ChatHost) -> None:
        self.deps = deps
        self.assistants = assistants
        self.host = host

    @classmethod
    def hosted(cls, assistants: AssistantService, host: ChatHost) -> ChatService:
        """The service over ``host``, with the dependencies as the host adapted them."""
        return cls(host.deps, assistants, host)

    def parse(self, body: Any) -> ChatRequest:
        try:
            request = ChatRequest.model_validate(body)
        except pydantic.ValidationError as exc:
            raise format_pydantic_error(exc) from None
        limit = self.deps.settings.max_message_chars
        if len(request.message) > limit:
            raise ValidationError(
                f"message is {len(request.message)} characters; the limit is {limit} "
                "(chat.max_message_chars)",
                field="message",
            )
        return request

    async def send(
        self,
        team_id: str,
        request: ChatRequest,
        *,
        assistant_id: str | None = None,
        executed_by: str | None = None,
    ) -> dict[str, Any]:
        """Start a turn; ``{run, conversation_id, assistant_id}``. With ``assistant_id`` and no
        ``conversationId`` a conversation is created; with a ``conversationId`` its assistant
        answers (another assistant's id is a 400)."""
        repo = self.deps.conversations
        conversation = None
        if request.conversationId:
            conversation = await repo.get(team_id, request.conversationId)
            if assistant_id and conversation.assistant_id != assistant_id:
                raise ValidationError(
                    "this conversation belongs to another assistant", field="conversationId"
                )
            assistant_id = conversation.assistant_id
        if assistant_id is None:
            raise ValidationError(
                "assistant_id or conversationId is required", field="assistant_id"
            )
        assistant = await self.assistants.chat_ready(team_id, assistant_id)
        checked = check_input(assistant.guardrails.input, request.message)
        check_fits(
            assistant.systemPrompt, checked.text_to_send, assistant_budget(self.deps.llm, assistant)
        )
        if conversation is None:
            conversation = await repo.create(
                team_id,
                assistant_id,
                # the checked text: a title made from the message must not keep its PII
                title=request.title or _title(checked.text_to_send),
                created_by=executed_by,
            )
        run = await self.host.send(
            team_id,
            conversation.id,
            Send(
                assistant=assistant,
                text=checked.text_to_send,
                policy=request.doubleTexting or assistant.doubleTexting,
                # always an id: a send retried after a lost answer (a worker that died as it
                # answered) returns the first run instead of writing the message twice
                client_message_id=request.clientMessageId or new_id("cm"),
                executed_by=executed_by,
                redactions=tuple(dict(r) for r in checked.redactions),
            ),
        )
        return {
            "run": run,
            "conversation_id": conversation.id,
            "assistant_id": assistant_id,
            "on_disconnect": request.onDisconnect or assistant.onDisconnect,
        }

    async def cancel(self, team_id: str, conversation_id: str, run_id: str) -> dict[str, Any]:
        """Cancel a queued or running run from any replica; the run's record afterwards."""
        run = await self.run(team_id, conversation_id, run_id)
        if run["status"] in ACTIVE_RUN:
            await self.deps.conversations.request_cancel(team_id, run_id)
            await self.host.cancel(team_id, conversation_id, run_id)
        return await self.run(team_id, conversation_id, run_id)

    async def reply(
        self, team_id: str, run_id: str, timeout: float | None = None
    ) -> dict[str, Any]:
        """The run's terminal event's data (``status``, ``content``, ``usage``, ``cost``, …) once it
        ends; after ``timeout`` seconds ``{"status": "running", "content": <the text so far>}``.
        Task results and citations are taken from their own events when the terminal one lacks
        them (a cancelled run's)."""
        seen: dict[str, Any] = {"status": "running", "content": "", "task_results": []}
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                async for event in self.events(team_id, run_id):
                    if event is None:
                        continue
                    if event.event == "message.delta":
                        seen["content"] += event.data.get("text", "")
                    elif event.event == "message.replace":
                        seen["content"] = event.data.get("text", "")
                    elif event.event == "task.completed":
                        seen["task_results"].append(event.data)
                    elif event.event == "retrieval":
                        seen["citations"] = event.data.get("citations") or []
                    elif event.event in TERMINAL_EVENTS:
                        return {**seen, **{k: v for k, v in event.data.items() if v is not None}}
        return seen

    async def reap(self, now: datetime | None = None) -> int:
        """For the supervisor: interrupt the runs whose worker died (a stale heartbeat that the
        host does not vouch for), with their partial replies kept, and end their streams with
        ``run.interrupted``."""
        stale = await self.deps.conversations.interrupt_stale(
            now or utcnow(), self.deps.settings.stale_after_seconds, self.host.holds
        )
        for team_id, run_id in stale:
            with contextlib.suppress(LinqraError):  # the log died with its process: fine
                await self.deps.runlog.append(
                    team_id, run_id, "run.interrupted", {"run_id": run_id, "status": "interrupted"}
                )
                await self.deps.runlog.finish(team_id, run_id)
        return len(stale)

    async def run(self, team_id: str, conversation_id: str, run_id: str) -> dict[str, Any]:
        run = (await self.deps.conversations.get_run(team_id, run_id)).model_dump()
        if run["conversation_id"] != conversation_id:
            raise NotFound(f"run {run_id!r} not found", field="run_id")
        return run

    async def events(
        self, team_id: str, run_id: str, after: int = 0
    ) -> AsyncIterator[RunEvent | None]:
        """The run's events after seq ``after``, as they happen, until its terminal event;
        ``None`` every ``chat.keepalive_seconds`` without one (a keep-alive)."""
        async for batch in self.event_batches(team_id, run_id, after):
            if batch is None:
                yield None
                continue
            for event in batch:
                yield event

    async def event_batches(
        self, team_id: str, run_id: str, after: int = 0
    ) -> AsyncIterator[list[RunEvent] | None]:
        """:meth:`events` as the log hands them over: every event written since the last read
        at once, so a reader that fell behind catches up in one write, not one per token. The
        last batch ends with the terminal event.

        A run whose log is gone before its terminal event was read — a ``memory://`` log lost
        with its conversation's process (a node lost), or an expired one — waits, with
        keep-alives, until the store records how the run ended (the supervisor interrupts a dead
        worker's run within ``chat.stale_after_seconds``), and ends with a terminal event made
        from that record: a client always learns the end, never just a closed stream."""
        log, wait = self.deps.runlog, self.deps.settings.keepalive_seconds
        quiet = 0.0  # seconds since the last keep-alive, while the log is gone
        while True:
            events = await log.read(team_id, run_id, after, wait=wait)
            if not events:
                gone = await log.is_finished(team_id, run_id)
                run = await self.deps.conversations.get_run(team_id, run_id)
                if run.status not in ACTIVE_RUN and not gone:
                    # its terminal event is written right after its status: one more look
                    events = await log.read(team_id, run_id, after, wait=min(wait, 2.0))
            if not events:
                if run.status not in ACTIVE_RUN:
                    yield [await self._recorded_end(team_id, run, after + 1)]
                    return
                if gone:  # a read returns at once now: look again every second
                    await asyncio.sleep(1.0)
                    quiet += 1.0
                    if quiet < wait:
                        continue
                quiet = 0.0
                yield None
                continue
            for i, event in enumerate(events):
                if event.event in TERMINAL_EVENTS:
                    yield events[: i + 1]
                    return
            after = events[-1].seq
            yield events

    async def _recorded_end(self, team_id: str, run: ChatRun, seq: int) -> RunEvent:
        """The terminal event of a run that ended while its log was gone, from its records."""
        data: dict[str, Any] = {"run_id": run.id, "status": str(run.status)}
        reply = await self.deps.conversations.run_reply(team_id, run.id)
        if reply is not None:
            data.update(message_id=reply.id, content=reply.content, cost=reply.cost)
        return RunEvent(run.id, seq, f"run.{run.status}", data)


def parse_event_id(value: str | None, run_id: str) -> int:
    """``Last-Event-ID: <run>:<seq>`` → seq (0 when absent); another run's id is a 400."""
    if not value:
        return 0
    run, _, seq = value.rpartition(":")
    if run != run_id or not (seq.isascii() and seq.isdigit()) or len(seq) > 12:
        raise ValidationError(
            f"Last-Event-ID {value[:80]!r} is not an event of run {run_id}", field="Last-Event-ID"
        )
    return int(seq)


def _title(message: str) -> str:
    first = " ".join(message.split())
    return first if len(first) <= 60 else first[:59] + "…"
