"""The durable state of chat: conversations, their messages and the runs that answer them.

Three collections of the document store, every call scoped to a team (another team's ids are
:class:`~linqra.errors.NotFound`):

* ``conversations`` — one per chat with an assistant: title, ``message_count`` and the
  ``totals`` of what its replies cost (tokens by kind, ``cost`` as decimal text, ``currency``).
  Deleting one hides it (``deleted_at``): it and its messages are no longer found.
* ``chat_messages`` — the turns, numbered by ``seq`` 1, 2, 3 … per conversation. The number is
  taken by inserting ``max(seq) + 1`` under a unique index on ``(conversation_id, seq)`` and
  trying the next one on a conflict, so concurrent appends — from any number of processes —
  get distinct numbers without gaps. A message sent again with the same ``client_message_id``
  returns the first one and writes nothing: its id is derived from the conversation and that
  key, so the second insert conflicts on the id (no unique index on an optional field, which
  MongoDB would treat as null for every message without one).
* ``chat_runs`` — one per answer being produced: ``queued → running → completed | cancelled |
  failed | interrupted``, every change a compare-and-set on the status. A running run
  heartbeats; :meth:`ConversationRepository.interrupt_stale` (the supervisor) ends the runs
  whose heartbeat went stale as ``interrupted``, and their reply message too, keeping the
  partial content — a crash never leaves a message ``streaming``.

A message is finished once (:meth:`~ConversationRepository.finish_message`, compare-and-set
from ``pending``/``streaming``), and only that call adds its usage and cost to the
conversation's totals (a compare-and-set on ``totals_version``). Should the process die between
the two writes, the message's share is missing from the totals, never counted twice.

Rolling back a turn (:meth:`~ConversationRepository.delete_from`) *deletes* its messages, the
highest ``seq`` first, so the numbers stay gap-free and the next append reuses them, and a
client retrying the turn with the same ``client_message_id`` gets a new message rather than
the rolled-back one. The totals keep what the rolled-back replies cost: it was spent.
Appends to a conversation while it is being rolled back are not ordered against the rollback
(the orchestrator runs one turn at a time).
"""

from __future__ import annotations

import builtins
import hashlib
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, TypeVar

from linqra.assistants._chat_records import (
    CONVERSATIONS,
    MESSAGE_ACTIVE,
    MESSAGE_TERMINAL,
    MESSAGES,
    RUN_ACTIVE,
    RUN_TERMINAL,
    RUNS,
    TOKEN_KINDS,
    ChatRun,
    Conversation,
    Message,
    MessageStatus,
    MessageUsage,
    Role,
    RunStatus,
    Totals,
)
from linqra.assistants._chat_runs import ChatRuns
from linqra.clock import iso, new_id
from linqra.errors import Conflict, NotFound, ValidationError
from linqra.llm.types import Usage
from linqra.store import Document, IndexSpec

__all__ = [
    "CONVERSATIONS",
    "INDEXES",
    "MESSAGES",
    "MESSAGE_ACTIVE",
    "MESSAGE_TERMINAL",
    "RUNS",
    "RUN_ACTIVE",
    "RUN_TERMINAL",
    "TOKEN_KINDS",
    "ChatRun",
    "Conversation",
    "ConversationRepository",
    "Message",
    "MessageStatus",
    "MessageUsage",
    "Role",
    "RunStatus",
    "Totals",
]

log = logging.getLogger(__name__)
E = TypeVar("E", bound=StrEnum)

INDEXES = [
    IndexSpec(CONVERSATIONS, ("created_at",)),
    IndexSpec(CONVERSATIONS, ("assistant_id", "created_at")),
    IndexSpec(MESSAGES, ("conversation_id", "seq"), unique=True),
    IndexSpec(MESSAGES, ("run_id", "status")),
    IndexSpec(RUNS, ("conversation_id", "status")),
    IndexSpec(RUNS, ("status", "heartbeat_at"), name="ix_chat_runs_liveness"),
]
"""The indexes of the three collections (:meth:`ConversationRepository.init` creates them)."""
_FIXED = frozenset({"id", "team_id", "conversation_id", "seq"})


# -- the repository ----------------------------------------------------------------------------
class ConversationRepository(ChatRuns):
    """Conversations, messages and chat runs in one document store; every call names the team.
    The run methods (``create_run``, ``get_run``, ``update_run``, ``set_run_status``,
    ``heartbeat_run``, ``request_cancel``, ``active_runs``, ``interrupt_stale``) come from
    :class:`~linqra.assistants._chat_runs.ChatRuns`."""

    async def init(self) -> None:
        """Create the collections and indexes (idempotent)."""
        await self.store.ensure_indexes(INDEXES)

    # -- conversations -----------------------------------------------------------------------
    async def create(
        self,
        team_id: str,
        assistant_id: str,
        *,
        title: str | None = None,
        created_by: str | None = None,
    ) -> Conversation:
        now = iso()
        doc = {
            "id": new_id("conv"),
            "assistant_id": assistant_id,
            "title": _title(title),
            "created_by": created_by,
            "created_at": now,
            "updated_at": now,
            "message_count": 0,
            "totals": Totals().model_dump(),
            "totals_version": 0,
            "deleted_at": None,
        }
        await self.store.insert(CONVERSATIONS, team_id, doc)
        return Conversation.model_validate(doc)

    async def get(self, team_id: str, conversation_id: str) -> Conversation:
        """The conversation; :class:`NotFound` when missing, deleted or another team's."""
        return Conversation.model_validate(await self._conversation(team_id, conversation_id))

    async def _conversation(self, team_id: str, conversation_id: str) -> Document:
        doc = await self.store.get(CONVERSATIONS, team_id, conversation_id)
        if doc is None or doc.get("deleted_at"):
            raise NotFound(f"conversation {conversation_id!r} not found", field="conversation_id")
        return doc

    async def list(
        self, team_id: str, *, assistant_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[builtins.list[Conversation], int]:
        """A page of the team's conversations (of one assistant), newest first, and the total."""
        where: dict[str, Any] = {"deleted_at": None}
        if assistant_id is not None:
            where["assistant_id"] = assistant_id
        docs = await self.store.find(
            CONVERSATIONS, team_id, where, sort=[("created_at", -1)], limit=limit, skip=offset
        )
        total = await self.store.count(CONVERSATIONS, team_id, where)
        return [Conversation.model_validate(d) for d in docs], total

    async def rename(self, team_id: str, conversation_id: str, title: str | None) -> Conversation:
        changes = {"title": _title(title), "updated_at": iso()}
        if not await self.store.update(
            CONVERSATIONS, team_id, conversation_id, changes, where={"deleted_at": None}
        ):
            raise NotFound(f"conversation {conversation_id!r} not found", field="conversation_id")
        return await self.get(team_id, conversation_id)

    async def delete(self, team_id: str, conversation_id: str) -> None:
        """Hide the conversation and its messages; :class:`NotFound` if it is not there."""
        now = iso()
        if not await self.store.update(
            CONVERSATIONS,
            team_id,
            conversation_id,
            {"deleted_at": now, "updated_at": now},
            where={"deleted_at": None},
        ):
            raise NotFound(f"conversation {conversation_id!r} not found", field="conversation_id")

    # -- messages ------------------------------------------------------------------------------
    async def append(
        self,
        team_id: str,
        conversation_id: str,
        *,
        role: str,
        content: str,
        status: str,
        run_id: str | None = None,
        client_message_id: str | None = None,
        **extra: Any,
    ) -> tuple[Message, bool]:
        """Add a message with the conversation's next ``seq``; whether it is new (``False``:
        ``client_message_id`` was seen before, and the first message is returned unchanged)."""
        doc: Document = {
            "conversation_id": conversation_id,
            "role": _enum(Role, role, "role"),
            "content": _content(content),
            "status": _enum(MessageStatus, status, "status"),
            "run_id": run_id,
            "client_message_id": client_message_id,
            "task_results": [],
            "citations": [],
            "created_at": iso(),
            "finished_at": None,
            **_extra(extra),
        }
        await self._conversation(team_id, conversation_id)
        if client_message_id is None:
            doc["id"] = new_id("msg")
        else:
            doc["id"] = _message_id(team_id, conversation_id, client_message_id)
            if (seen := await self.store.get(MESSAGES, team_id, doc["id"])) is not None:
                return Message.model_validate(seen), False
        seq = await self._last_seq(team_id, conversation_id) + 1
        while True:
            try:
                await self.store.insert(MESSAGES, team_id, {**doc, "seq": seq})
                break
            except Conflict:
                if (seen := await self.store.get(MESSAGES, team_id, doc["id"])) is not None:
                    return Message.model_validate(seen), False  # the same client message
                # ``seq`` was taken (so every number up to it is): try after the newest
                last = await self._last_seq(team_id, conversation_id)
                if last < seq:
                    raise  # not a taken number after all: another index refused it
                seq = last + 1
        await self.store.update(
            CONVERSATIONS,
            team_id,
            conversation_id,
            {"message_count": seq, "updated_at": doc["created_at"]},
            where={"message_count": {"$lt": seq}},
        )
        return Message.model_validate({**doc, "seq": seq}), True

    async def _last_seq(self, team_id: str, conversation_id: str) -> int:
        newest = await self.store.find(
            MESSAGES, team_id, {"conversation_id": conversation_id}, sort=[("seq", -1)], limit=1
        )
        return int(newest[0]["seq"]) if newest else 0

    async def find_client_message(
        self, team_id: str, conversation_id: str, client_message_id: str
    ) -> Message | None:
        """The message sent before with ``client_message_id``, if any (a retry's original)."""
        doc = await self.store.get(
            MESSAGES, team_id, _message_id(team_id, conversation_id, client_message_id)
        )
        return None if doc is None else Message.model_validate(doc)

    async def get_message(self, team_id: str, message_id: str) -> Message:
        doc = await self.store.get(MESSAGES, team_id, message_id)
        if doc is None:
            raise NotFound(f"message {message_id!r} not found", field="message_id")
        return Message.model_validate(doc)

    async def update_message(
        self,
        team_id: str,
        message_id: str,
        changes: Mapping[str, Any],
        *,
        expect_status: str | Sequence[str] | None = None,
    ) -> bool:
        """Set ``changes`` on a message (its id, conversation and ``seq`` stay); with
        ``expect_status``, only while its status is that (or one of those). Whether it was set."""
        if fixed := _FIXED & set(changes):
            raise ValueError(f"a message's {', '.join(sorted(fixed))} cannot be changed")
        changes = dict(changes)
        if "status" in changes:
            changes["status"] = _enum(MessageStatus, changes["status"], "status")
        if "content" in changes:
            changes["content"] = _content(changes["content"])
        where = None
        if expect_status is not None:
            expected = [expect_status] if isinstance(expect_status, str) else list(expect_status)
            where = {"status": {"$in": expected}}
        return await self.store.update(MESSAGES, team_id, message_id, changes, where=where)

    async def finish_message(
        self,
        team_id: str,
        message_id: str,
        status: str,
        *,
        content: str | None = None,
        usage: Usage | Mapping[str, Any] | None = None,
        cost: Decimal | str | int | None = None,
        currency: str | None = None,
        error: Any = None,
        **extra: Any,
    ) -> bool:
        """End a ``pending``/``streaming`` message in the terminal ``status`` with what it ended
        with (``extra``: ``model``, ``task_results``, ``citations`` …), and add its usage and cost
        to the conversation's totals. ``False`` (and nothing written) if it had already ended."""
        if _enum(MessageStatus, status, "status") not in MESSAGE_TERMINAL:
            raise ValueError(f"{status!r} is not a terminal message status")
        tokens = _usage(usage)
        amount = _decimal(cost)
        changes: Document = {"status": status, "finished_at": iso(), **_extra(extra)}
        if content is not None:
            changes["content"] = _content(content)
        if tokens is not None:
            changes["usage"] = tokens
        if amount is not None:
            changes.update(cost=str(amount), currency=currency)
        if error is not None:
            changes["error"] = error
        if not await self.update_message(
            team_id, message_id, changes, expect_status=list(MESSAGE_ACTIVE)
        ):
            return False
        if tokens is not None or amount is not None:
            message = await self.store.get(MESSAGES, team_id, message_id)
            if message is not None:
                await self._add_to_totals(
                    team_id, message["conversation_id"], tokens or {}, amount, currency
                )
        return True

    async def _add_to_totals(
        self,
        team_id: str,
        conversation_id: str,
        tokens: Mapping[str, Any],
        amount: Decimal | None,
        currency: str | None,
    ) -> None:
        while (doc := await self.store.get(CONVERSATIONS, team_id, conversation_id)) is not None:
            totals = Totals.model_validate(doc.get("totals") or {}).model_dump()
            for kind in TOKEN_KINDS:
                totals[kind] += int(tokens.get(kind, 0))
            if amount is not None:
                if totals["currency"] not in (None, currency):
                    log.warning(
                        "conversation totals: team=%s conversation=%s cost in %s not added to %s",
                        team_id,
                        conversation_id,
                        currency,
                        totals["currency"],
                    )
                else:
                    totals["cost"] = str(Decimal(totals["cost"]) + amount)
                    totals["currency"] = currency
            version = int(doc.get("totals_version") or 0)
            if await self.store.update(
                CONVERSATIONS,
                team_id,
                conversation_id,
                {"totals": totals, "totals_version": version + 1},
                where={"totals_version": doc.get("totals_version")},
            ):
                return

    async def messages(
        self,
        team_id: str,
        conversation_id: str,
        *,
        limit: int = 100,
        offset: int = 0,
        after_seq: int | None = None,
    ) -> tuple[builtins.list[Message], int]:
        """A page of the conversation's messages by ascending ``seq`` (those after ``after_seq``)
        and how many there are."""
        await self._conversation(team_id, conversation_id)
        where: dict[str, Any] = {"conversation_id": conversation_id}
        if after_seq is not None:
            where["seq"] = {"$gt": after_seq}
        docs = await self.store.find(
            MESSAGES, team_id, where, sort=[("seq", 1)], limit=limit, skip=offset
        )
        total = await self.store.count(MESSAGES, team_id, where)
        return [Message.model_validate(d) for d in docs], total

    async def history(
        self, team_id: str, conversation_id: str, *, before_seq: int | None = None, limit: int = 50
    ) -> builtins.list[Message]:
        """What a model is shown: the latest ``limit`` messages before ``before_seq`` (all, if
        ``None``), oldest first — completed ones, and cancelled ones that have content."""
        await self._conversation(team_id, conversation_id)
        where: dict[str, Any] = {
            "conversation_id": conversation_id,
            "status": {"$in": [MessageStatus.COMPLETED, MessageStatus.CANCELLED]},
        }
        if before_seq is not None:
            where["seq"] = {"$lt": before_seq}
        found: builtins.list[Message] = []
        skip = 0
        while len(found) < limit:
            docs = await self.store.find(
                MESSAGES, team_id, where, sort=[("seq", -1)], limit=limit, skip=skip
            )
            skip += len(docs)
            found += [
                Message.model_validate(d)
                for d in docs
                if d["status"] == MessageStatus.COMPLETED or d.get("content")
            ]
            if len(docs) < limit:
                break
        return found[:limit][::-1]

    async def delete_from(self, team_id: str, conversation_id: str, seq: int) -> int:
        """Roll back: delete the messages with ``seq`` and after (highest first, so the numbers
        stay gap-free even if this stops half-way); how many were deleted."""
        await self._conversation(team_id, conversation_id)
        where = {"conversation_id": conversation_id, "seq": {"$gte": seq}}
        deleted = 0
        while docs := await self.store.find(
            MESSAGES, team_id, where, sort=[("seq", -1)], limit=100
        ):
            for doc in docs:
                deleted += await self.store.delete(MESSAGES, team_id, doc["id"])
        await self.store.update(
            CONVERSATIONS,
            team_id,
            conversation_id,
            {"message_count": max(seq - 1, 0), "updated_at": iso()},
            where={"message_count": {"$gte": seq}},
        )
        return deleted


# -- checks ------------------------------------------------------------------------------------
def _message_id(team_id: str, conversation_id: str, client_message_id: str) -> str:
    """The same id for the same client message of a conversation (so a repeat conflicts)."""
    key = "\x00".join((team_id, conversation_id, client_message_id)).encode()
    return "msg_" + hashlib.sha256(key).hexdigest()[:32]


def _enum(kind: type[E], value: Any, field: str) -> E:
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(m.value for m in kind)
        raise ValidationError(f"{field} must be one of {known}", field=field) from None


def _title(title: str | None) -> str | None:
    if title is not None and (not isinstance(title, str) or len(title) > 500):
        raise ValidationError("title is text of at most 500 characters", field="title")
    return title


def _content(content: Any) -> str:
    if not isinstance(content, str):
        raise ValidationError("content must be text", field="content")
    return content


def _extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    if fixed := (_FIXED | {"status"}) & set(extra):
        raise ValueError(f"{', '.join(sorted(fixed))} cannot be given as extra fields")
    return dict(extra)


def _usage(usage: Usage | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    if isinstance(usage, Usage):
        fields = {kind: getattr(usage, kind) for kind in TOKEN_KINDS}
        return {**fields, "estimated": usage.estimated}
    return MessageUsage.model_validate(dict(usage)).model_dump()


def _decimal(cost: Decimal | str | int | None) -> Decimal | None:
    if cost is None:
        return None
    try:
        amount = Decimal(str(cost))
    except InvalidOperation:
        raise ValidationError("cost must be a decimal number", field="cost") from None
    if not amount.is_finite():
        raise ValidationError("cost must be a decimal number", field="cost")
    return amount
