"""Agents, tasks, triggers and task executions: what the API accepts (pydantic, 4xx naming the
field) and the records it returns (every stored field kept: ``extra="allow"``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from linqra.status import TaskStatus

__all__ = [
    "TASK_TYPES",
    "AdhocRequest",
    "Agent",
    "AgentInput",
    "ExecuteTaskRequest",
    "Schedule",
    "Task",
    "TaskExecution",
    "TaskInput",
    "TaskVersion",
    "TriggerInput",
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


# -- running tasks -----------------------------------------------------------------------------
class ExecuteTaskRequest(BaseModel):
    """Run a stored task now (a MANUAL trigger); a repeated ``idempotency_key`` returns the
    first execution."""

    model_config = ConfigDict(extra="forbid")
    input: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class AdhocRequest(BaseModel):
    """A ``WORKFLOW_EMBEDDED_ADHOC`` task, run once and not stored."""

    model_config = ConfigDict(extra="forbid")
    type: str = "WORKFLOW_EMBEDDED_ADHOC"
    name: str = Field(default="ad hoc", max_length=200)
    config: dict[str, Any]
    input: dict[str, Any] = Field(default_factory=dict)
    max_retries: int = Field(default=0, ge=0, le=20)
    backoff_seconds: float = Field(default=1.0, ge=0, le=3600)
    timeout_seconds: float = Field(default=300.0, gt=0, le=86_400)

    def task(self) -> dict[str, Any]:
        """The task as :meth:`linqra.runs.RunService.run_adhoc` takes it (not stored: no id)."""
        return {
            "id": None,
            "agent_id": None,
            "version": None,
            **self.model_dump(exclude={"input"}),
        }


# -- records -----------------------------------------------------------------------------------
class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class Agent(_Record):
    id: str
    name: str
    description: str = ""
    enabled: bool
    max_concurrency: int
    created_at: str
    updated_at: str | None = None
    deleted_at: str | None = None


class Schedule(_Record):
    """The fire times of one CRON trigger of a task's current version."""

    id: str
    task_id: str
    cron: str
    timezone: str
    next_fire_at: str | None = None
    last_fire_at: str | None = None
    active: bool
    paused: bool = False


class TaskVersion(_Record):
    """One version of a task's definition (``rolled_back_from`` when it was a rollback)."""

    task_id: str
    version: int
    name: str
    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    triggers: list[dict[str, Any]] = Field(default_factory=list)
    created_at: str | None = None


class Task(_Record):
    """A task at its current version, with its schedules and event triggers."""

    id: str
    agent_id: str
    version: int
    name: str
    description: str = ""
    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    priority: int = 5
    enabled: bool
    paused: bool = False
    triggers: list[dict[str, Any]] = Field(default_factory=list)
    schedules: list[Schedule] | None = None
    event_triggers: list[dict[str, Any]] | None = None
    created_at: str
    updated_at: str | None = None


class TaskExecution(_Record):
    """One run of a task: ``PENDING → RUNNING → COMPLETED | FAILED | CANCELLED``; each attempt
    is a recorded workflow execution (``execution_ids``)."""

    id: str
    task_id: str | None = Field(description="None for an ad hoc run")
    task_version: int | None = None
    agent_id: str | None = None
    type: str
    status: TaskStatus
    input: dict[str, Any] = Field(default_factory=dict)
    trigger: dict[str, Any] = Field(default_factory=dict)
    depth: int = 0
    attempts: int = 0
    execution_ids: list[str] = Field(default_factory=list)
    result: Any = None
    error: Any = None
    cancel_requested: bool = False
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
