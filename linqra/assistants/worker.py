"""The one place that serializes a conversation's turns, and the host that keeps those places.

A :class:`ConversationWorker` owns what must not be decided twice for one conversation: whether
a new message waits, is refused or stops the current reply (the double-texting policy), the
order of the queue, and the active run that a cancel must reach. Everything it decides is
written to the store and the run's event log first, so any replica can read it; only the
running asyncio task lives here. :class:`InProcessChatHost` keeps a worker per conversation in
one process; on a cluster a few host actors each keep one (``actors/chat_host.py``), the
conversation's found by a hash of its id, so a cancel sent to any replica reaches it.

Double-texting (per assistant, or per message):

* ``reject`` — 409 while a run is queued or running;
* ``enqueue`` (default) — the message waits its turn, in order (``run.queued`` says behind how
  many);
* ``interrupt`` — the running and queued runs are cancelled (their partial replies kept) and the
  new one starts;
* ``rollback`` — likewise, and the cancelled turns (their messages and partial replies) are
  deleted from the conversation.

A retried message (the same ``client_message_id``) returns the run it started the first time and
writes nothing, whatever the policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from linqra.assistants.models import Assistant
from linqra.assistants.turn import ChatDeps, Turn
from linqra.errors import Conflict, LinqraError

__all__ = ["ChatHost", "ConversationWorker", "InProcessChatHost", "Send"]

log = logging.getLogger(__name__)

Policy = Literal["reject", "enqueue", "interrupt", "rollback"]


@dataclass(frozen=True, slots=True)
class Send:
    """A user's message for a conversation, checked and ready (guardrails applied)."""

    assistant: Assistant
    text: str
    policy: Policy
    client_message_id: str | None = None
    executed_by: str | None = None
    redactions: tuple[dict[str, Any], ...] = ()


@dataclass(slots=True)
class _Queued:
    run: dict[str, Any]
    user: dict[str, Any]
    assistant: Assistant


class ConversationWorker:
    """A conversation's queue and active run (see the module docstring)."""

    def __init__(self, deps: ChatDeps, team_id: str, conversation_id: str) -> None:
        self.deps = deps
        self.team_id = team_id
        self.conversation_id = conversation_id
        self._lock = asyncio.Lock()
        self._queue: deque[_Queued] = deque()
        self._current: tuple[str, asyncio.Task[str]] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._sending = 0  # sends under way, waiting for the lock or writing their run
        self.last_active = time.monotonic()

    @property
    def idle(self) -> bool:
        """Nothing runs, waits or is being sent here: a send still writing its run and message
        (store calls that may take seconds) keeps its worker from being dropped under it, which
        would leave the run with a worker no later message reaches."""
        return self._current is None and not self._queue and not self._sending

    def holds(self, run_id: str) -> bool:
        """Whether ``run_id`` runs or waits here."""
        if self._current is not None and self._current[0] == run_id:
            return True
        return any(item.run["id"] == run_id for item in self._queue)

    async def send(self, send: Send) -> dict[str, Any]:
        """The run of ``send`` (a new one, queued; or the first one for a retried message)."""
        self._sending += 1
        try:
            return await self._send(send)
        finally:
            self._sending -= 1
            self.last_active = time.monotonic()

    async def _send(self, send: Send) -> dict[str, Any]:
        repo = self.deps.conversations
        async with self._lock:
            self.last_active = time.monotonic()
            if send.client_message_id:
                seen = await repo.find_client_message(
                    self.team_id, self.conversation_id, send.client_message_id
                )
                if seen is not None and seen.run_id:
                    return (await repo.get_run(self.team_id, seen.run_id)).model_dump()
            busy = self._current is not None or bool(self._queue)  # not counting sends
            if busy and send.policy == "reject":
                raise Conflict(
                    "a reply is being written in this conversation; wait for it, cancel it, or "
                    "send with doubleTexting enqueue, interrupt or rollback",
                    field="doubleTexting",
                )
            if busy and send.policy in ("interrupt", "rollback"):
                await self._stop_all(rollback=send.policy == "rollback")
            # the run first: a process dying before the message leaves a queued run the
            # supervisor interrupts, never a message whose run does not exist
            run = await repo.create_run(
                self.team_id,
                self.conversation_id,
                policy={"double_texting": send.policy},
                executed_by=send.executed_by,
            )
            run_id = run.id
            user, created = await repo.append(
                self.team_id,
                self.conversation_id,
                role="user",
                content=send.text,
                status="completed",
                run_id=run_id,
                client_message_id=send.client_message_id,
                redactions=list(send.redactions),
            )
            if not created and user.run_id:  # the same message id sent twice at once: the first
                await repo.set_run_status(self.team_id, run_id, "cancelled")  # one won
                return (await repo.get_run(self.team_id, user.run_id)).model_dump()
            await repo.update_run(self.team_id, run_id, {"user_message_id": user.id})
            run_doc = {**run.model_dump(), "user_message_id": user.id}
            await self.deps.runlog.append(
                self.team_id,
                run_id,
                "run.created",
                {
                    "run_id": run_id,
                    "conversation_id": self.conversation_id,
                    "assistant_id": send.assistant.id,
                    "user_message_id": user.id,
                    "status": "queued",
                },
            )
            ahead = len(self._queue) + (self._current is not None)
            if ahead:
                await self.deps.runlog.append(self.team_id, run_id, "run.queued", {"ahead": ahead})
            self._queue.append(_Queued(run_doc, user.model_dump(), send.assistant))
            if self._pump is None or self._pump.done():
                self._pump = asyncio.get_running_loop().create_task(self._drain())
            return run_doc

    async def cancel(self, run_id: str) -> bool:
        """Cancel ``run_id`` if it runs or waits here; whether it did."""
        async with self._lock:
            if self._current is not None and self._current[0] == run_id:
                await self._cancel(self._current[1])
                return True
            for item in list(self._queue):
                if item.run["id"] == run_id:
                    self._queue.remove(item)
                    await self._cancel_queued(item)
                    return True
            return False

    async def close(self) -> None:
        """Cancel what runs and waits (recorded as cancelled), e.g. when the process stops."""
        async with self._lock:
            await self._stop_all(rollback=False)
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(BaseException):
                await self._pump

    # -- inside -----------------------------------------------------------------------------
    async def _drain(self) -> None:
        beat = asyncio.get_running_loop().create_task(self._beat_queue())
        try:
            await self._run_queue()
        finally:
            beat.cancel()

    async def _beat_queue(self) -> None:
        """Keep the waiting runs' heartbeats fresh: only a dead worker's queued runs go stale
        (and are interrupted by the supervisor)."""
        while True:
            await asyncio.sleep(self.deps.settings.heartbeat_seconds)
            for item in list(self._queue):
                with contextlib.suppress(LinqraError):
                    await self.deps.conversations.heartbeat_run(self.team_id, item.run["id"])

    async def _run_queue(self) -> None:
        while self._queue:
            item = self._queue.popleft()
            turn = Turn(self.deps, self.team_id, item.assistant, item.run, item.user)
            task = asyncio.get_running_loop().create_task(turn.run())
            self._current = (item.run["id"], task)
            try:
                await asyncio.wait({task})
                if task.cancelled():  # before its first step ran: it recorded nothing
                    await self._cancel_queued(item, expect=("queued", "running"))
                elif task.exception() is not None:
                    log.error("chat run %s crashed", item.run["id"], exc_info=task.exception())
            finally:
                self._current = None
                self.last_active = time.monotonic()

    async def _stop_all(self, *, rollback: bool) -> None:
        """Cancel the queued runs and the running one (the lock is held)."""
        stopped = [item.user for item in self._queue]
        while self._queue:
            await self._cancel_queued(self._queue.popleft())
        current = self._current
        if current is not None:
            await self._cancel(current[1])
            run = await self.deps.conversations.get_run(self.team_id, current[0])
            if run.user_message_id:
                user = await self.deps.conversations.get_message(self.team_id, run.user_message_id)
                stopped.insert(0, user.model_dump())
        if rollback and stopped:
            first = min(int(u["seq"]) for u in stopped)
            await self.deps.conversations.delete_from(self.team_id, self.conversation_id, first)

    @staticmethod
    async def _cancel(task: asyncio.Task[str]) -> None:
        task.cancel()
        await asyncio.wait({task})  # the turn records itself as cancelled

    async def _cancel_queued(self, item: _Queued, *, expect: tuple[str, ...] = ("queued",)) -> None:
        repo, run_id = self.deps.conversations, item.run["id"]
        if await repo.set_run_status(self.team_id, run_id, "cancelled", expect=expect):
            await self.deps.runlog.append(
                self.team_id,
                run_id,
                "run.cancelled",
                {"run_id": run_id, "status": "cancelled", "message_id": None, "content": ""},
            )
        await self.deps.runlog.finish(self.team_id, run_id)


class ChatHost:
    """Where a conversation's worker lives (the port; :class:`InProcessChatHost` or the
    cluster's host actors). ``deps`` are what the chat service uses with it: a host may replace
    the run log with one that reaches the workers' (``actors/chat_host.py``)."""

    deps: ChatDeps

    async def send(self, team_id: str, conversation_id: str, send: Send) -> dict[str, Any]:
        raise NotImplementedError

    async def cancel(self, team_id: str, conversation_id: str, run_id: str) -> bool:
        raise NotImplementedError

    async def holds(self, team_id: str, conversation_id: str, run_id: str) -> bool:
        """Whether a live worker runs or queues ``run_id``: the supervisor asks before it
        interrupts a run whose heartbeat went stale. No answer is ``False``."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class InProcessChatHost(ChatHost):
    """A worker per conversation in this process; idle ones are dropped after
    ``chat.idle_seconds`` (their state is all in the store)."""

    def __init__(self, deps: ChatDeps) -> None:
        self.deps = deps
        self._workers: dict[tuple[str, str], ConversationWorker] = {}

    @property
    def active(self) -> int:
        """How many conversations have a worker now."""
        return len(self._workers)

    def worker(self, team_id: str, conversation_id: str) -> ConversationWorker:
        self.passivate()
        key = (team_id, conversation_id)
        if key not in self._workers:
            self._workers[key] = ConversationWorker(self.deps, team_id, conversation_id)
        return self._workers[key]

    async def send(self, team_id: str, conversation_id: str, send: Send) -> dict[str, Any]:
        return await self.worker(team_id, conversation_id).send(send)

    async def cancel(self, team_id: str, conversation_id: str, run_id: str) -> bool:
        worker = self._workers.get((team_id, conversation_id))
        return worker is not None and await worker.cancel(run_id)

    async def holds(self, team_id: str, conversation_id: str, run_id: str) -> bool:
        worker = self._workers.get((team_id, conversation_id))
        return worker is not None and worker.holds(run_id)

    async def close(self) -> None:
        for worker in list(self._workers.values()):
            await worker.close()
        self._workers.clear()

    def passivate(self) -> None:
        """Drop the workers idle for ``chat.idle_seconds`` (on each new message, and as a
        cluster host's timer says)."""
        cutoff = time.monotonic() - self.deps.settings.idle_seconds
        for key, worker in list(self._workers.items()):
            if worker.idle and worker.last_active < cutoff:
                del self._workers[key]
