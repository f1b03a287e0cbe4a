"""Workflows, their versions and executions as the API returns them.

The stored records are what :class:`~linqra.workflows.service.WorkflowService` and
:class:`~linqra.workflows.records.ExecutionRepository` write; these models name their fields for
clients and keep any other field (``extra="allow"``), so nothing stored is dropped.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from linqra.status import ExecutionStatus, StepStatus

__all__ = [
    "Execution",
    "ExecutionAccepted",
    "ExecutionSummary",
    "StepRun",
    "Workflow",
    "WorkflowVersion",
]

Number = int | float


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class Workflow(_Record):
    """A workflow at its current version: its definition's fields (``mode``, ``steps``,
    ``params``, ``timeoutSeconds``) at the top level."""

    id: str
    name: str
    description: str | None = None
    version: int
    mode: str | None = Field(default=None, description="sequential or dag")
    steps: list[dict[str, Any]] = Field(default_factory=list)
    params: dict[str, Any] | None = None
    created_at: str
    updated_at: str | None = None


class WorkflowVersion(_Record):
    """One stored version (``rolled_back_from``: the version it copies)."""

    workflow_id: str
    version: int
    name: str
    description: str | None = None
    definition: dict[str, Any]
    created_at: str
    created_by: str | None = None
    rolled_back_from: int | None = None


class ExecutionAccepted(BaseModel):
    """A started execution: follow ``links.self`` for its record."""

    id: str
    status: ExecutionStatus
    links: dict[str, str]


class StepRun(_Record):
    """One run of one step: its resolved ``inputs``, ``output`` or ``error``, and where it ran."""

    step: int
    run: int | None = None
    runs: int | None = Field(default=None, description="how many times the step ran")
    target: str | None = None
    action: str | None = None
    status: StepStatus
    executor: str | None = None
    inputs: dict[str, Any] | None = None
    output: Any = None
    error: Any = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: Number | None = None


class ExecutionSummary(_Record):
    """An execution in a list (without its definition and steps)."""

    id: str
    team_id: str | None = None
    workflow_id: str | None = None
    workflow_version: int | None = None
    workflow_name: str | None = None
    status: ExecutionStatus
    mode: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    source: str | None = None
    executed_by: str | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: Number | None = None
    result: Any = None
    error: Any = None


class Execution(ExecutionSummary):
    """The full record: the execution, the definition that ran, and its steps."""

    definition: dict[str, Any] | None = None
    pending_async_steps: list[int] = Field(default_factory=list)
    resumes: int | None = None
    auto_resumes: int | None = None
    steps: list[StepRun] = Field(default_factory=list)
