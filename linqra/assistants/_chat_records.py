"""The records of chat as they are stored and returned: conversations, messages, chat runs.

Private: :mod:`linqra.assistants.conversations` re-exports every public name (import from
there). Each status set is a ``StrEnum`` stored as its plain word, with the sets code branches
on beside it, as in :mod:`linqra.status`. The models keep any other stored field
(``extra="allow"``) but never the store's bookkeeping (``team_id``, ``totals_version``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CONVERSATIONS",
    "MESSAGES",
    "MESSAGE_ACTIVE",
    "MESSAGE_TERMINAL",
    "RUNS",
    "RUN_ACTIVE",
    "RUN_TERMINAL",
    "TOKEN_KINDS",
    "ChatRun",
    "Conversation",
    "Message",
    "MessageStatus",
    "MessageUsage",
    "Role",
    "RunStatus",
    "Totals",
]

CONVERSATIONS = "conversations"
MESSAGES = "chat_messages"
RUNS = "chat_runs"

TOKEN_KINDS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)
"""The token counts of :class:`linqra.llm.types.Usage`, summed into a conversation's totals."""
_INTERNAL = frozenset({"team_id", "totals_version"})


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    SYSTEM = "system"


class MessageStatus(StrEnum):
    PENDING = "pending"
    STREAMING = "streaming"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # its run died; the content is what had been saved of it


MESSAGE_ACTIVE = frozenset({MessageStatus.PENDING, MessageStatus.STREAMING})
MESSAGE_TERMINAL = frozenset(MessageStatus) - MESSAGE_ACTIVE


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # its owner stopped heartbeating


RUN_ACTIVE = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
RUN_TERMINAL = frozenset(RunStatus) - RUN_ACTIVE


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _drop_internal(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if k not in _INTERNAL}
        return data


class Totals(_Record):
    """What a conversation's finished messages used and cost (``cost``: decimal text in
    ``currency``, ``None`` until a cost was added)."""

    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost: str = "0"
    currency: str | None = None


class Conversation(_Record):
    """A chat with one assistant; ``message_count`` is its highest ``seq``."""

    id: str
    assistant_id: str
    title: str | None = None
    created_by: str | None = None
    created_at: str
    updated_at: str
    message_count: int = 0
    totals: Totals = Field(default_factory=Totals)
    deleted_at: str | None = None


class MessageUsage(_Record):
    """Tokens by kind, as :class:`linqra.llm.types.Usage` counts them."""

    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False


class Message(_Record):
    """One message of a conversation, ``seq`` its place (1, 2, 3 …)."""

    id: str
    conversation_id: str
    seq: int
    role: Role
    content: str = ""
    status: MessageStatus
    run_id: str | None = None
    client_message_id: str | None = None
    model: str | None = None
    usage: MessageUsage | None = None
    cost: str | None = None
    currency: str | None = None
    task_results: list[Any] = Field(default_factory=list)
    citations: list[Any] = Field(default_factory=list)
    error: Any = None
    created_at: str
    finished_at: str | None = None


class ChatRun(_Record):
    """One answer being produced in a conversation (``policy``: how the orchestrator runs it)."""

    id: str
    conversation_id: str
    assistant_id: str
    status: RunStatus
    user_message_id: str | None = None
    reply_message_id: str | None = None
    policy: dict[str, Any] | None = None
    executed_by: str | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    heartbeat_at: str | None = None
    owner: str | None = None
    cancel_requested: bool = False
