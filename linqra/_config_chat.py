"""The ``chat`` section of the settings (:mod:`linqra.config`): the chat orchestrator's limits
and timings, and its hosts on a cluster (docs/chat.md). Its own module so that ``config.py``
stays under the project's module size."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["ChatSettings"]


class ChatSettings(BaseModel):
    """The chat orchestrator's limits and timings (``linqra/assistants``)."""

    model_config = {"extra": "forbid"}

    max_message_chars: int = Field(
        default=32_000, ge=1, le=1_000_000, description="longest user message a chat accepts (400)"
    )
    heartbeat_seconds: float = Field(
        default=2.0, gt=0, le=60, description="how often a running reply says it is alive"
    )
    stale_after_seconds: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="a running reply silent this long is interrupted by the supervisor "
        "(its process died): the partial text is kept, the next message works",
    )
    save_every_seconds: float = Field(
        default=0.5, gt=0, le=60, description="how often a streaming reply's text is stored"
    )
    idle_seconds: float = Field(
        default=300.0,
        gt=0,
        description="a conversation with no turn for this long is dropped from its host "
        "(the next message makes its worker again)",
    )
    hosts: int = Field(
        default=2,
        ge=1,
        le=1024,
        description="on a cluster, the chat host actors: each keeps the workers of the "
        "conversations whose ids hash to it; set it before the cluster starts (the supervisor "
        "ends the hosts past it as it starts)",
    )
    keepalive_seconds: float = Field(
        default=15.0, gt=0, le=300, description="SSE keep-alive comment interval"
    )
    run_log_ttl_seconds: int = Field(
        default=3600, ge=60, description="how long a finished run's events can be replayed"
    )
