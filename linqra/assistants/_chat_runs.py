"""Chat runs: the ``chat_runs`` half of :class:`~linqra.assistants.conversations.ConversationRepository`.

Private: the repository inherits these methods (use them through it). A run goes ``queued →
running → completed | cancelled | failed | interrupted``; every status change is a
compare-and-set on the status, so of two writers (the run's owner finishing it, the supervisor
interrupting it) one wins and the other learns it lost. The heartbeat is
:class:`linqra.jobs.Jobs`'s, as for every other durable job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from linqra.assistants._chat_records import (
    CONVERSATIONS,
    MESSAGE_ACTIVE,
    MESSAGES,
    RUN_ACTIVE,
    RUN_TERMINAL,
    RUNS,
    ChatRun,
    Message,
    MessageStatus,
    RunStatus,
)
from linqra.clock import iso, new_id
from linqra.errors import NotFound, ValidationError
from linqra.jobs import JobKind, Jobs
from linqra.store import Document, DocumentStore

__all__ = ["RUN_JOBS", "ChatRuns", "Holds"]

log = logging.getLogger(__name__)

RUN_JOBS = JobKind(RUNS, RunStatus.QUEUED, RunStatus.RUNNING, RUN_TERMINAL)
# asks the host whether a live worker holds the run: (team id, conversation id, run id) -> bool
Holds = Callable[[str, str, str], Awaitable[bool]]
_INTERRUPTED = {"code": "interrupted", "message": "the reply stopped: its run was interrupted"}


class ChatRuns:
    """The chat-run records of one store; every call names the team."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store
        self.run_jobs = Jobs(store, RUN_JOBS)

    async def create_run(
        self,
        team_id: str,
        conversation_id: str,
        *,
        user_message_id: str | None = None,
        reply_message_id: str | None = None,
        policy: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        executed_by: str | None = None,
    ) -> ChatRun:
        """A ``queued`` run of the conversation's assistant; ``run_id`` (``run_…``) may be chosen
        beforehand so that messages can name it. :class:`NotFound` without the conversation."""
        conversation = await self.store.get(CONVERSATIONS, team_id, conversation_id)
        if conversation is None or conversation.get("deleted_at"):
            raise NotFound(f"conversation {conversation_id!r} not found", field="conversation_id")
        now = iso()
        doc = {
            "id": run_id or new_id("run"),
            "conversation_id": conversation_id,
            "assistant_id": conversation["assistant_id"],
            "status": RunStatus.QUEUED,
            "user_message_id": user_message_id,
            "reply_message_id": reply_message_id,
            "policy": None if policy is None else dict(policy),
            "executed_by": executed_by,
            "created_at": now,
            "started_at": None,
            "finished_at": None,
            "heartbeat_at": now,
            "owner": None,
            "cancel_requested": False,
        }
        await self.store.insert(RUNS, team_id, doc)
        return ChatRun.model_validate(doc)

    async def get_run(self, team_id: str, run_id: str) -> ChatRun:
        doc = await self.store.get(RUNS, team_id, run_id)
        if doc is None:
            raise NotFound(f"run {run_id!r} not found", field="run_id")
        return ChatRun.model_validate(doc)

    async def update_run(
        self,
        team_id: str,
        run_id: str,
        changes: Mapping[str, Any],
        *,
        expect: Sequence[str] | None = None,
    ) -> bool:
        """Set ``changes`` (``reply_message_id`` …), with ``expect`` only while the status is one
        of those; whether it was set. The status changes through :meth:`set_run_status`."""
        if {"status", "id", "team_id"} & set(changes):
            raise ValueError("a run's id and status cannot be changed by update_run")
        where = None if expect is None else {"status": {"$in": list(expect)}}
        return await self.store.update(RUNS, team_id, run_id, dict(changes), where=where)

    async def set_run_status(
        self,
        team_id: str,
        run_id: str,
        status: str,
        *,
        expect: Sequence[str] | None = None,
        owner: str | None = None,
    ) -> bool:
        """Compare-and-set the status from one of ``expect`` (by default ``queued`` for
        ``running``, ``queued`` or ``running`` for a terminal status). ``running`` stamps
        ``started_at``, the heartbeat and ``owner``; a terminal status ``finished_at``.
        Whether this call set it."""
        try:
            status = RunStatus(status)
        except ValueError:
            raise ValidationError(f"unknown run status {status!r}", field="status") from None
        now = iso()
        changes: Document = {"status": status}
        default: list[str] = []
        if status == RunStatus.RUNNING:
            changes.update(started_at=now, heartbeat_at=now, owner=owner)
            default = [RunStatus.QUEUED]
        elif status in RUN_TERMINAL:
            changes["finished_at"] = now
            default = list(RUN_ACTIVE)
        where = {"status": {"$in": list(default if expect is None else expect)}}
        return await self.store.update(RUNS, team_id, run_id, changes, where=where)

    async def heartbeat_run(self, team_id: str, run_id: str, *, owner: str | None = None) -> bool:
        """Keep an active run alive; ``False`` once it has ended (or, with ``owner``, belongs to
        another owner): stop working on it."""
        return await self.run_jobs.heartbeat(team_id, run_id, owner=owner)

    async def request_cancel(self, team_id: str, run_id: str) -> bool:
        """Ask an active run to stop (its owner watches ``cancel_requested``); whether it was
        still active."""
        active = {"status": {"$in": list(RUN_ACTIVE)}}
        return await self.store.update(
            RUNS, team_id, run_id, {"cancel_requested": True}, where=active
        )

    async def run_reply(self, team_id: str, run_id: str) -> Message | None:
        """The assistant's reply a run wrote (its latest), if it wrote one."""
        where = {"run_id": run_id, "role": "assistant"}
        docs = await self.store.find(MESSAGES, team_id, where, sort=[("seq", -1)], limit=1)
        return Message.model_validate(docs[0]) if docs else None

    async def active_runs(self, team_id: str, conversation_id: str) -> list[ChatRun]:
        """The conversation's queued and running runs, oldest first."""
        where = {"conversation_id": conversation_id, "status": {"$in": list(RUN_ACTIVE)}}
        docs = await self.store.find(RUNS, team_id, where, sort=[("created_at", 1)], limit=1000)
        return [ChatRun.model_validate(d) for d in docs]

    async def interrupt_stale(
        self, now: datetime, stale_after: float, holds: Holds | None = None
    ) -> list[tuple[str, str]]:
        """Maintenance, for the supervisor (every team): each ``running`` or ``queued`` run whose
        heartbeat is more than ``stale_after`` seconds older than ``now`` is suspect (the worker
        that holds a run heartbeats its queued runs too, so a live worker's go stale only when
        its process is starved of CPU). A suspect run becomes ``interrupted``, and so do its
        ``pending``/``streaming`` messages (its reply), keeping the content saved so far.
        Compare-and-set on the heartbeat seen: a run that heartbeats meanwhile, or that another
        supervisor took, is left alone.

        With ``holds``, the worker is asked first (every run of a batch at once): a run it says
        it still runs or queues gets its heartbeat renewed instead, and a run is interrupted only
        when its worker is gone or cannot answer. Each run is judged once per call. The ``(team,
        run id)`` of each run this call interrupted."""
        cutoff = iso(now - timedelta(seconds=stale_after))
        active = [RunStatus.RUNNING, RunStatus.QUEUED]
        where = {"status": {"$in": active}, "heartbeat_at": {"$lt": cutoff}}
        interrupted: list[tuple[str, str]] = []
        judged: set[str] = set()
        while batch := await self.store.scan_all_teams(RUNS, where, limit=200):
            batch = [run for run in batch if run["id"] not in judged]
            if not batch:  # what is left was judged already (renewed, then stale again)
                break
            judged.update(run["id"] for run in batch)
            held: list[object] = [False] * len(batch)
            if holds is not None:  # a worker that fails to answer does not vouch for its run
                asked = (holds(r["team_id"], r["conversation_id"], r["id"]) for r in batch)
                held = list(await asyncio.gather(*asked, return_exceptions=True))
            for run, answer in zip(batch, held, strict=True):
                if isinstance(answer, Exception):
                    log.warning("asking the worker of chat run %s failed: %r", run["id"], answer)
                if answer is True:
                    await self._renew(run, iso(now))
                elif await self._interrupt(run, iso(now)):
                    interrupted.append((run["team_id"], run["id"]))
        return interrupted

    async def _renew(self, run: Document, at: str) -> bool:
        renewed = await self.store.update(
            RUNS,
            run["team_id"],
            run["id"],
            {"heartbeat_at": at},
            where={"status": run["status"], "heartbeat_at": run["heartbeat_at"]},
        )
        if renewed:
            log.info(
                "chat run kept: its heartbeat was stale but its worker holds it: team=%s run_id=%s",
                run["team_id"],
                run["id"],
            )
        return renewed

    async def _interrupt(self, run: Document, at: str) -> bool:
        team_id = run["team_id"]
        if not await self.store.update(
            RUNS,
            team_id,
            run["id"],
            {"status": RunStatus.INTERRUPTED, "finished_at": at},
            where={"status": run["status"], "heartbeat_at": run["heartbeat_at"]},
        ):
            return False
        log.warning("chat run interrupted (stale heartbeat): team=%s run_id=%s", team_id, run["id"])
        active = {"status": {"$in": list(MESSAGE_ACTIVE)}}
        replies = await self.store.find(MESSAGES, team_id, {"run_id": run["id"], **active})
        ids: set[str] = {m["id"] for m in replies}
        if run.get("reply_message_id"):
            ids.add(run["reply_message_id"])
        for message_id in sorted(ids):
            await self.store.update(
                MESSAGES,
                team_id,
                message_id,
                {"status": MessageStatus.INTERRUPTED, "finished_at": at, "error": _INTERRUPTED},
                where=active,
            )
        return True
