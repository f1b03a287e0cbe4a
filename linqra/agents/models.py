"""Agents, tasks and triggers as the API accepts them (pydantic, 4xx naming the field)."""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from linqra.errors import ValidationError
from linqra.workflows.definition import format_pydantic_error

__all__ = [
    "TASK_TYPES",
    "AgentInput",
    "TaskInput",
    "TriggerInput",
    "parse_model",
]

TASK_TYPES = (
    "WORKFLOW_EMBEDDED",
    "WORKFLOW_EMBEDDED_ADHOC",
    "WORKFLOW_TRIGGER",
    "API_CALL",
    "DATA_PROCESSING",
)
Name = Field(min_length=1, max_length=200)


class AgentInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Name
    description: str = Field(default="", max_length=2000)
    enabled: bool = True
    max_concurrency: int = Field(default=4, ge=1, le=256, description="task executions at once")


class TriggerInput(BaseModel):
    """``CRON`` (``cron`` + ``timezone``), ``EVENT_DRIVEN`` (``topic`` + optional ``filter``),
    ``MANUAL``; ``misfire_policy`` ``FIRE_ONCE_NOW`` or ``SKIP``; ``schedule_on_startup`` fires a
    CRON trigger once when its schedule starts."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["CRON", "EVENT_DRIVEN", "MANUAL"]
    cron: str | None = Field(default=None, max_length=256)
    timezone: str = Field(default="UTC", max_length=64)
    misfire_policy: Literal["FIRE_ONCE_NOW", "SKIP"] = "FIRE_ONCE_NOW"
    schedule_on_startup: bool = False
    topic: str | None = Field(default=None, max_length=200)
    filter: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _shape(self) -> TriggerInput:
        if self.type == "CRON" and not self.cron:
            raise ValueError("a CRON trigger needs cron (a Quartz expression)")
        if self.type == "EVENT_DRIVEN" and not self.topic:
            raise ValueError("an EVENT_DRIVEN trigger needs topic")
        return self


class TaskInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Name
    description: str = Field(default="", max_length=2000)
    type: Literal[
        "WORKFLOW_EMBEDDED",
        "WORKFLOW_EMBEDDED_ADHOC",
        "WORKFLOW_TRIGGER",
        "API_CALL",
        "DATA_PROCESSING",
    ]
    config: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(default=5, ge=0, le=10, description="0 lowest, 10 highest")
    max_retries: int = Field(default=0, ge=0, le=20)
    backoff_seconds: float = Field(default=1.0, ge=0, le=3600)
    timeout_seconds: float = Field(default=300.0, gt=0, le=86_400)
    enabled: bool = True
    triggers: list[TriggerInput] = Field(default_factory=list, max_length=20)


def parse_model(model: type[BaseModel], data: Any, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise ValidationError("the body is a JSON object", field=prefix.rstrip(".") or "body")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise format_pydantic_error(exc, prefix) from None
