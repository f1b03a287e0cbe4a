"""Every status a record can have, in one place.

Each kind of work has its own enum; a status is a ``StrEnum`` so it is stored and compared as
the plain word (``ExecutionStatus.COMPLETED == "COMPLETED"``). The sets code branches on —
which statuses end a run, which may be resumed — are class-level frozensets here and nowhere
else.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "DOCUMENT_ACTIVE",
    "DOCUMENT_TERMINAL",
    "EXECUTION_ACTIVE",
    "EXECUTION_RESUMABLE",
    "EXECUTION_TERMINAL",
    "MAX_TRIGGER_DEPTH",
    "STEP_FAILED",
    "STEP_FINISHED",
    "TASK_ACTIVE",
    "TASK_TERMINAL",
    "DocumentStatus",
    "ExecutionStatus",
    "StepStatus",
    "TaskStatus",
]

MAX_TRIGGER_DEPTH = 5
"""How deep tasks and workflows may start each other (a trigger cycle stops here)."""


class ExecutionStatus(StrEnum):
    """A workflow execution."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"


EXECUTION_TERMINAL = frozenset(
    {
        ExecutionStatus.COMPLETED,
        ExecutionStatus.FAILED,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.TIMEOUT,
    }
)
EXECUTION_ACTIVE = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RUNNING})
EXECUTION_RESUMABLE = frozenset(
    {ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT, ExecutionStatus.CANCELLED}
)


class StepStatus(StrEnum):
    """One run of one step of an execution."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"  # an async step waiting in the durable queue
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    SKIPPED = "SKIPPED"


STEP_FINISHED = frozenset(
    {
        StepStatus.COMPLETED,
        StepStatus.FAILED,
        StepStatus.TIMEOUT,
        StepStatus.CANCELLED,
        StepStatus.SKIPPED,
    }
)
STEP_FAILED = frozenset({StepStatus.FAILED, StepStatus.TIMEOUT})
"""A step run that ends in one of these fails its execution."""


class TaskStatus(StrEnum):
    """A task execution of an agent."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TASK_TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
TASK_ACTIVE = frozenset({TaskStatus.PENDING, TaskStatus.RUNNING})


class DocumentStatus(StrEnum):
    """A Knowledge Hub document's ingestion."""

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    READY = "READY"
    FAILED = "FAILED"


DOCUMENT_TERMINAL = frozenset({DocumentStatus.READY, DocumentStatus.FAILED})
DOCUMENT_ACTIVE = frozenset({DocumentStatus.PENDING, DocumentStatus.PROCESSING})
