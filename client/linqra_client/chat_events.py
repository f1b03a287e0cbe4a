"""The events of a chat reply as typed objects (``docs/chat.md``, "Events").

Each server-sent event (and each WebSocket ``event`` frame) becomes the class for its name;
an event this client does not know yet arrives as a plain :class:`ChatEvent`, so a newer
server never breaks an older client.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ChatEvent",
    "MessageCompleted",
    "MessageDelta",
    "MessageReplace",
    "Retrieval",
    "RunCreated",
    "RunFinished",
    "RunQueued",
    "TaskCompleted",
    "TasksStarted",
    "chat_event",
]

FINAL_EVENTS = frozenset({"run.completed", "run.cancelled", "run.failed", "run.interrupted"})


class ChatEvent(BaseModel):
    """An event of a reply: its ``event`` name and ``id`` (``<run>:<seq>``)."""

    model_config = ConfigDict(extra="allow")

    event: str
    id: str | None = None


class RunCreated(ChatEvent):
    """The first event: the run, and the conversation (a new one's id)."""

    run_id: str
    conversation_id: str
    assistant_id: str | None = None
    user_message_id: str | None = None


class RunQueued(ChatEvent):
    ahead: int = 0


class TasksStarted(ChatEvent):
    tasks: list[dict[str, Any]] = []


class TaskCompleted(ChatEvent):
    task_id: str | None = None
    task_execution_id: str | None = None
    name: str | None = None
    status: str | None = None
    answer: Any = None
    documents: list[Any] = []
    error: Any = None


class Retrieval(ChatEvent):
    collections: list[Any] = []
    citations: list[dict[str, Any]] = []
    errors: list[Any] = []


class MessageDelta(ChatEvent):
    """The next piece of the reply."""

    message_id: str | None = None
    text: str = ""


class MessageReplace(ChatEvent):
    """The whole reply so far, rewritten by an output guardrail."""

    message_id: str | None = None
    text: str = ""


class MessageCompleted(ChatEvent):
    message_id: str | None = None
    content: str = ""
    citations: list[dict[str, Any]] = []
    task_results: list[Any] = []
    usage: dict[str, Any] = {}
    cost: Decimal | None = None
    currency: str | None = None
    model: str | None = None


class RunFinished(ChatEvent):
    """The last event: ``run.completed``, ``run.cancelled``, ``run.failed`` or
    ``run.interrupted``, with the reply's ``content``, ``usage`` and exact ``cost``."""

    status: str | None = None
    content: str | None = None
    usage: dict[str, Any] = {}
    cost: Decimal | None = None
    error: Any = None


_CLASSES: dict[str, type[ChatEvent]] = {
    "run.created": RunCreated,
    "run.queued": RunQueued,
    "tasks.started": TasksStarted,
    "task.completed": TaskCompleted,
    "retrieval": Retrieval,
    "message.delta": MessageDelta,
    "message.replace": MessageReplace,
    "message.completed": MessageCompleted,
    **dict.fromkeys(FINAL_EVENTS, RunFinished),
}


def chat_event(name: str, event_id: str | None, data: Any) -> ChatEvent:
    """The typed event for ``name`` with its JSON ``data``."""
    fields = data if isinstance(data, dict) else {"data": data}
    cls = _CLASSES.get(name, ChatEvent)
    return cls.model_validate({**fields, "event": name, "id": event_id})
