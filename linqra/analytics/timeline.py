"""An execution's timeline, and the slowest executions and step runs of a range.

The timeline places every run of every step on the execution's own clock — milliseconds since
the execution was created — with when it was queued (async steps), started and finished, its
attempts, the executor that ran it (``inline``, ``io``, ``cpu`` …), the worker (async steps) and
whether the step cache answered: the bars of a Gantt chart, in start order. It reads one
execution's records (another team's id is a 404, as every read of the team's records is).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from linqra.analytics.query import TimeRange
from linqra.clock import parse_iso
from linqra.store import DocumentStore
from linqra.store.aggregation import Aggregation, Key, Measure, Within
from linqra.workflows.records import EXECUTIONS, STEP_RUNS, ExecutionRepository

__all__ = ["SLOWEST_OF", "slowest", "timeline"]

SLOWEST_OF = ("executions", "steps")


def _offset(origin: str, moment: Any) -> float | None:
    if not isinstance(moment, str):
        return None
    try:
        return round((parse_iso(moment) - parse_iso(origin)).total_seconds() * 1000, 3)
    except ValueError:
        return None


def _bar(run: Mapping[str, Any], origin: str) -> dict[str, Any]:
    error = run.get("error")
    return {
        **{
            k: run.get(k)
            for k in (
                "step",
                "run",
                "target",
                "action",
                "executor",
                "status",
                "queued_at",
                "started_at",
                "finished_at",
                "duration_ms",
                "attempts",
                "cache_hit",
                "worker",
            )
        },
        "error_code": error.get("code") if isinstance(error, Mapping) else None,
        "queued_ms": _offset(origin, run.get("queued_at")),
        "start_ms": _offset(origin, run.get("started_at")),
        "end_ms": _offset(origin, run.get("finished_at")),
    }


async def timeline(store: DocumentStore, team_id: str, execution_id: str) -> dict[str, Any]:
    """The execution's step runs on its clock (404 naming ``execution_id`` when not the team's)."""
    repo = ExecutionRepository(store)
    execution = await repo.get(team_id, execution_id)
    origin = execution["created_at"]
    runs = await repo.step_runs(team_id, execution_id)
    bars = [_bar(run, origin) for run in runs]
    far = float("inf")
    bars.sort(
        key=lambda b: (
            b["start_ms"] if b["start_ms"] is not None else (b["queued_ms"] or far),
            b["step"],
            b["run"],
        )
    )
    return {
        "execution_id": execution_id,
        "workflow_id": execution.get("workflow_id"),
        "workflow_name": execution.get("workflow_name"),
        "status": execution["status"],
        "created_at": origin,
        "started_at": execution.get("started_at"),
        "finished_at": execution.get("finished_at"),
        "duration_ms": execution.get("duration_ms"),
        "wait_ms": _offset(origin, execution.get("started_at")),
        "steps": bars,
        "attempts": sum(int(r.get("attempts") or 0) for r in runs),
        "cache_hits": sum(1 for r in runs if r.get("cache_hit") is True),
    }


async def slowest(
    store: DocumentStore,
    team_id: str,
    of: str,
    span: TimeRange,
    *,
    workflow_id: str | None,
    n: int,
) -> dict[str, Any]:
    """The ``n`` longest finished executions (or step runs) of the executions created in ``span``."""
    parents: dict[str, Any] = {"created_at": span.where()}
    if workflow_id is not None:
        parents["workflow_id"] = workflow_id
    if of == "executions":
        keys: tuple[str, ...] = ("id", "workflow_id", "workflow_name", "status", "created_at")
        spec = Aggregation(
            EXECUTIONS, tuple(Key(k, k) for k in keys), (Measure("duration_ms", "max", "duration_ms"),),
            where={**parents, "duration_ms": {"$ne": None}}, order=(("duration_ms", -1),), limit=n,
        )  # fmt: skip
    else:
        keys = ("id", "execution_id", "step", "run", "target", "executor", "status", "started_at")
        spec = Aggregation(
            STEP_RUNS, tuple(Key(k, k) for k in keys), (Measure("duration_ms", "max", "duration_ms"),),
            where={"duration_ms": {"$ne": None}}, within=Within(EXECUTIONS, "execution_id", parents),
            order=(("duration_ms", -1),), limit=n,
        )  # fmt: skip
    found = await store.aggregate(team_id, spec)
    items = [{**row, "duration_ms": float(row["duration_ms"])} for row in found.rows]
    return {"of": of, "from": span.start, "to": span.end, "items": items}
