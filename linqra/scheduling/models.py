"""Events a team publishes, webhooks that publish for it, and cron previews: the bodies the API
accepts and the records it returns (records keep every stored field: ``extra="allow"``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CronPreview",
    "Hook",
    "HookRequest",
    "PublishRequest",
    "PublishedEvent",
]


class PublishRequest(BaseModel):
    """Publish ``payload`` on the team's ``topic``: EVENT_DRIVEN triggers on it start tasks."""

    model_config = ConfigDict(extra="forbid")
    topic: str = Field(min_length=1, max_length=150)
    payload: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class HookRequest(BaseModel):
    """A webhook that publishes what it is sent on ``topic``."""

    model_config = ConfigDict(extra="forbid")
    topic: str = Field(min_length=1, max_length=150)
    description: str = Field(default="", max_length=500)


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class PublishedEvent(_Record):
    id: str
    topic: str
    published_at: str | None = None


class Hook(_Record):
    """A webhook; ``secret`` (the HMAC key) and ``url`` only in the answer that creates it."""

    id: str
    topic: str
    description: str = ""
    secret: str | None = None
    url: str | None = None
    created_at: str
    accepted: int = 0
    rejected: int = 0


class CronPreview(_Record):
    expression: str
    timezone: str
    next: list[str] = Field(description="the next fire times as UTC instants")
    description: str
