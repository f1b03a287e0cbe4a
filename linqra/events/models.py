"""A dead letter as the API returns it (every stored field kept: ``extra="allow"``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["DeadLetter"]


class DeadLetter(BaseModel):
    """An event that failed ``agents.max_event_deliveries`` times, recorded for its team;
    ``payload_json`` is the payload as JSON text (cut when ``payload_truncated``)."""

    model_config = ConfigDict(extra="allow")

    id: str
    topic: str
    group: str
    event_id: str
    published_at: str | None = None
    payload_json: str
    payload_truncated: bool
    attempts: int
    last_error: str
    first_failure_at: str | None = None
    last_failure_at: str | None = None
    dead_at: str
