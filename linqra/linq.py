"""Linqra's own entry point: a "Linq request" in, a Linqra-shaped response out.

``POST /linq`` accepts ``{"link": {"target": "workflow", "action": "execute"},
"query": {"intent", "params", "workflowId" | "workflow", "mode"?}, "executedBy"?}``
and answers ``{"result": {"steps", "finalResult", "pendingAsyncSteps"},
"metadata": {"status", "teamId", "cacheHit", "workflowMetadata"}}`` as Linqra does.
Other ``link.target`` values (``assistant``, registered services) come with the
capabilities that implement them.
"""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from linqra.errors import ValidationError
from linqra.status import ExecutionStatus, StepStatus
from linqra.validation import format_pydantic_error

__all__ = ["LinqRequest", "linq_response", "parse_linq"]

_STATUS: dict[str, str] = {
    ExecutionStatus.COMPLETED: "success",
    ExecutionStatus.FAILED: "error",
    ExecutionStatus.TIMEOUT: "timeout",
    ExecutionStatus.CANCELLED: "cancelled",
}
"""An execution's status as Linqra's protocol words it (others: the status in lower case)."""


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str = Field(min_length=1, max_length=128)
    action: str = Field(min_length=1, max_length=64)


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intent: str | None = Field(default=None, max_length=256)
    params: dict[str, Any] = Field(default_factory=dict)
    workflowId: str | None = Field(default=None, max_length=128)
    workflow: list[dict[str, Any]] | None = None
    mode: str | None = Field(default=None, max_length=16)
    timeoutSeconds: float | None = Field(default=None, gt=0, le=7 * 86_400, allow_inf_nan=False)
    payload: Any = None
    chat: dict[str, Any] | None = None


class LinqRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    link: Link
    query: Query
    executedBy: str | None = Field(default=None, max_length=256)


def parse_linq(body: Any) -> LinqRequest:
    """Validate a Linq request that runs a workflow; 4xx errors name the field."""
    try:
        request = LinqRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        raise format_pydantic_error(exc) from None
    if request.link.target != "workflow":
        raise ValidationError(
            f'link.target {request.link.target!r} is not supported yet; use "workflow"',
            field="link.target",
        )
    if request.link.action != "execute":
        raise ValidationError('link.action must be "execute" for a workflow', field="link.action")
    if (request.query.workflowId is None) == (request.query.workflow is None):
        raise ValidationError(
            "give exactly one of query.workflowId and query.workflow", field="query.workflow"
        )
    return request


def inline_definition(request: LinqRequest) -> dict[str, Any]:
    data: dict[str, Any] = {"steps": request.query.workflow}
    if request.query.mode is not None:
        data["mode"] = request.query.mode
    if request.query.timeoutSeconds is not None:
        data["timeoutSeconds"] = request.query.timeoutSeconds
    return data


def linq_response(record: dict[str, Any]) -> dict[str, Any]:
    """Linqra's response shape from a full execution record."""
    steps = record.get("steps", [])
    results = [
        {
            "step": s["step"],
            "target": s["target"],
            "result": s.get("output"),
            "async": bool(s.get("async")),
        }
        for s in steps
        if s["status"] == StepStatus.COMPLETED
    ]
    metadata = []
    for s in steps:
        entry: dict[str, Any] = {
            "step": s["step"],
            "status": "success" if s["status"] == StepStatus.COMPLETED else s["status"].lower(),
            "durationMs": round(s.get("duration_ms") or 0),
            "target": s["target"],
            "executedAt": s.get("finished_at") or s.get("started_at"),
            "async": bool(s.get("async")),
        }
        if s.get("error"):
            entry["error"] = s["error"]
        metadata.append(entry)
    return {
        "result": {
            "steps": results,
            "finalResult": record.get("result"),
            "pendingAsyncSteps": record.get("pending_async_steps") or [],
        },
        "metadata": {
            "status": _STATUS.get(record["status"], record["status"].lower()),
            "teamId": record.get("team_id"),
            "executionId": record["id"],
            "cacheHit": any(s.get("cache_hit") for s in steps),
            "workflowMetadata": metadata,
            **({"error": record["error"]} if record.get("error") else {}),
        },
    }
