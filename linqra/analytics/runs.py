"""Run analytics: workflow executions, task executions and chat runs per group, step runs per step.

Each kind of run is a :class:`RunKind` — its collection, the field its range and buckets are
on, the dimensions it may be grouped by, which statuses count as what, and how long a run took
— so one query shape (counts by outcome, success and failure rates, duration mean, p50, p95,
p99 and max) serves all three. Step runs are counted for the executions created in the range
(optionally of one workflow): the store joins them to their executions, so the range and the
workflow pick the same executions as the workflow analytics do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from linqra.agents.executions import TASK_EXECUTIONS
from linqra.analytics.query import PERCENTILES, Page, TimeRange, bucket_key, bucket_start
from linqra.assistants.conversations import RUNS as CHAT_RUNS
from linqra.assistants.conversations import RunStatus
from linqra.status import ExecutionStatus, StepStatus, TaskStatus
from linqra.store import DocumentStore
from linqra.store.aggregation import Aggregation, Groups, Key, Measure, Within
from linqra.workflows.records import EXECUTIONS, STEP_RUNS

__all__ = [
    "ASSISTANTS",
    "KINDS",
    "STEP_DIMS",
    "TASKS",
    "WORKFLOWS",
    "RunKind",
    "run_stats",
    "step_stats",
]

_P = tuple(float(p) for p in PERCENTILES)
SORTS: dict[str, tuple[str, int] | None] = {
    "key": None,
    "runs": ("runs", -1),
    "failures": ("failures", -1),
    "avg": ("duration_avg", -1),
    "p50": ("duration.0", -1),
    "p95": ("duration.1", -1),
    "p99": ("duration.2", -1),
    "max": ("duration_max", -1),
}
"""``sort`` choices: by the group keys (and buckets, ascending), else by a figure, largest first."""


@dataclass(frozen=True)
class RunKind:
    name: str
    collection: str
    dims: Mapping[str, Key]
    default_group: tuple[str, ...]
    filters: Mapping[str, str]
    completed: tuple[str, ...]
    failed: tuple[str, ...]
    cancelled: tuple[str, ...]
    active: tuple[str, ...]
    duration: tuple[str, str | None]
    """``(field, None)``: milliseconds stored; ``(start, end)``: between two instants."""
    timed_out: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    """Names shown beside an id dimension (``workflow_name`` when grouped by ``workflow``)."""
    time_field: str = "created_at"


WORKFLOWS = RunKind(
    name="workflows",
    collection=EXECUTIONS,
    dims={
        "workflow": Key("workflow", "workflow_id"),
        "version": Key("version", "workflow_version"),
        "status": Key("status", "status"),
        "source": Key("source", "source"),
    },
    default_group=("workflow",),
    filters={"workflow_id": "workflow_id", "status": "status"},
    completed=(ExecutionStatus.COMPLETED,),
    failed=(ExecutionStatus.FAILED,),
    timed_out=(ExecutionStatus.TIMEOUT,),
    cancelled=(ExecutionStatus.CANCELLED,),
    active=(ExecutionStatus.PENDING, ExecutionStatus.RUNNING),
    duration=("duration_ms", None),
    labels={"workflow": "workflow_name"},
)
TASKS = RunKind(
    name="tasks",
    collection=TASK_EXECUTIONS,
    dims={
        "task": Key("task", "task_id"),
        "agent": Key("agent", "agent_id"),
        "type": Key("type", "type"),
        "trigger": Key("trigger", "trigger.type"),
        "status": Key("status", "status"),
    },
    default_group=("task",),
    filters={"task_id": "task_id", "agent_id": "agent_id", "status": "status"},
    completed=(TaskStatus.COMPLETED,),
    failed=(TaskStatus.FAILED,),
    cancelled=(TaskStatus.CANCELLED,),
    active=(TaskStatus.PENDING, TaskStatus.RUNNING),
    duration=("started_at", "finished_at"),
    labels={"task": "task_name"},
)
ASSISTANTS = RunKind(
    name="assistants",
    collection=CHAT_RUNS,
    dims={"assistant": Key("assistant", "assistant_id"), "status": Key("status", "status")},
    default_group=("assistant",),
    filters={"assistant_id": "assistant_id", "status": "status"},
    completed=(RunStatus.COMPLETED,),
    failed=(RunStatus.FAILED, RunStatus.INTERRUPTED),
    cancelled=(RunStatus.CANCELLED,),
    active=(RunStatus.QUEUED, RunStatus.RUNNING),
    duration=("started_at", "finished_at"),
)
KINDS = {kind.name: kind for kind in (WORKFLOWS, TASKS, ASSISTANTS)}

STEP_DIMS = {
    "step": Key("step", "step"),
    "target": Key("target", "target"),
    "action": Key("action", "action"),
    "executor": Key("executor", "executor"),
    "status": Key("status", "status"),
    "error_code": Key("error_code", "error.code"),
}


def _plain_values(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def _durations(row: Mapping[str, Any]) -> dict[str, float | None]:
    p = row.get("duration") or [None] * len(_P)
    return {
        "avg": _round(row.get("duration_avg")),
        "p50": _round(p[0]),
        "p95": _round(p[1]),
        "p99": _round(p[2]),
        "max": _round(row.get("duration_max")),
    }


def _round(value: Any, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _keys(keys: tuple[Key, ...], bucket: Key | None) -> tuple[Key, ...]:
    return (*keys, bucket) if bucket is not None else keys


def _item(
    row: Mapping[str, Any], keys: tuple[Key, ...], labels: Mapping[str, str]
) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for key in keys:
        if key.name == "bucket":
            item["bucket"] = bucket_start(row.get("bucket"))
        else:
            item[key.name] = row.get(key.name)
            if key.name in labels:
                item[labels[key.name]] = row.get(labels[key.name])
    return item


async def run_stats(
    store: DocumentStore,
    team_id: str,
    kind: RunKind,
    span: TimeRange,
    keys: tuple[Key, ...],
    *,
    bucket: str | None,
    order: tuple[tuple[str, int], ...],
    page: Page,
    filters: Mapping[str, str | None],
) -> dict[str, Any]:
    """One page of groups of ``kind``'s runs created in ``span``."""
    where: dict[str, Any] = {kind.time_field: span.where()}
    for name, value in filters.items():
        if value is not None:
            where[kind.filters[name]] = value
    start, end = kind.duration
    labels = {n: f for n, f in kind.labels.items() if any(k.name == n for k in keys)}
    measures = [
        Measure("runs", "count"),
        Measure("completed", "count_in", "status", values=_plain_values(kind.completed)),
        Measure("failed", "count_in", "status", values=_plain_values(kind.failed)),
        Measure("timed_out", "count_in", "status", values=_plain_values(kind.timed_out)),
        Measure("cancelled", "count_in", "status", values=_plain_values(kind.cancelled)),
        Measure("active", "count_in", "status", values=_plain_values(kind.active)),
        Measure(
            "failures", "count_in", "status", values=_plain_values(kind.failed + kind.timed_out)
        ),
        Measure("duration", "percentiles", start, until=end, ps=_P),
        Measure("duration_avg", "avg", start, until=end),
        Measure("duration_max", "max", start, until=end),
        *(Measure(label, "max", label) for label in labels.values()),
    ]
    grouped = _keys(keys, bucket_key(bucket, kind.time_field))
    found = await store.aggregate(
        team_id,
        Aggregation(
            kind.collection, grouped, tuple(measures), where=where, order=order,
            limit=page.limit, skip=page.offset,
        ),
    )  # fmt: skip
    items = []
    for row in found.rows:
        finished = row["completed"] + row["failures"] + row["cancelled"]
        items.append(
            {
                **_item(row, grouped, labels),
                **{k: row[k] for k in ("runs", "completed", "failed", "timed_out", "cancelled")},
                "active": row["active"],
                "finished": finished,
                "success_rate": _rate(row["completed"], finished),
                "failure_rate": _rate(row["failures"], finished),
                "duration_ms": _durations(row),
            }
        )
    return _envelope(span, bucket, keys, page, items, found)


def _envelope(
    span: TimeRange,
    bucket: str | None,
    keys: tuple[Key, ...],
    page: Page,
    items: list[dict[str, Any]],
    found: Groups,
) -> dict[str, Any]:
    return {
        "from": span.start,
        "to": span.end,
        "bucket": bucket,
        "group_by": [k.name for k in keys],
        **page.envelope(items, found.total),
    }


EXECUTED = ("cache_hit", (False,))
"""Step runs that ran (a cache hit, a skip or a failure before the start did not)."""


async def step_stats(
    store: DocumentStore,
    team_id: str,
    span: TimeRange,
    keys: tuple[Key, ...],
    *,
    workflow_id: str | None,
    bucket: str | None,
    order: tuple[tuple[str, int], ...],
    page: Page,
    filters: Mapping[str, str | None],
) -> dict[str, Any]:
    """One page of groups of the step runs of the executions created in ``span``."""
    parents: dict[str, Any] = {"created_at": span.where()}
    if workflow_id is not None:
        parents["workflow_id"] = workflow_id
    where = {STEP_DIMS[name].field: value for name, value in filters.items() if value is not None}
    done = ("duration_ms",)
    measures = (
        Measure("runs", "count"),
        Measure("completed", "count_in", "status", values=(StepStatus.COMPLETED.value,)),
        Measure("failed", "count_in", "status", values=(StepStatus.FAILED.value,)),
        Measure("timed_out", "count_in", "status", values=(StepStatus.TIMEOUT.value,)),
        Measure("cancelled", "count_in", "status", values=(StepStatus.CANCELLED.value,)),
        Measure("skipped", "count_in", "status", values=(StepStatus.SKIPPED.value,)),
        Measure(
            "failures",
            "count_in",
            "status",
            values=(StepStatus.FAILED.value, StepStatus.TIMEOUT.value),
        ),
        Measure("cache_hits", "count_in", "cache_hit", values=(True,)),
        Measure("attempts_avg", "avg", "attempts", only=EXECUTED),
        Measure("attempts_max", "max", "attempts", only=EXECUTED),
        Measure("error_codes", "distinct", "error.code"),
        Measure("duration", "percentiles", done[0], ps=_P, only=EXECUTED),
        Measure("duration_avg", "avg", done[0], only=EXECUTED),
        Measure("duration_max", "max", done[0], only=EXECUTED),
    )
    grouped = _keys(keys, bucket_key(bucket, "started_at"))
    found = await store.aggregate(
        team_id,
        Aggregation(
            STEP_RUNS, grouped, measures, where=where,
            within=Within(EXECUTIONS, "execution_id", parents),
            order=order, limit=page.limit, skip=page.offset,
        ),
    )  # fmt: skip
    items = []
    for row in found.rows:
        finished = row["completed"] + row["failures"] + row["cancelled"]
        items.append(
            {
                **_item(row, grouped, {}),
                **{
                    k: row[k]
                    for k in ("runs", "completed", "failed", "timed_out", "cancelled", "skipped")
                },
                "cache_hits": row["cache_hits"],
                "success_rate": _rate(row["completed"], finished),
                "failure_rate": _rate(row["failures"], finished),
                "attempts_avg": _round(row["attempts_avg"], 3),
                "attempts_max": None if row["attempts_max"] is None else int(row["attempts_max"]),
                "error_codes": [str(c) for c in row["error_codes"]],
                "duration_ms": _durations(row),
            }
        )
    return _envelope(span, bucket, keys, page, items, found)
