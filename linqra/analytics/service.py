"""The analytics service: validates a query, bounds it, asks the store, shapes the answer.

Every figure is computed in the store (:meth:`~linqra.store.base.DocumentStore.aggregate`: one
SQL statement on SQLite, one pipeline on MongoDB) over the indexes :data:`INDEXES` adds; nothing
loads a range's records into Python except the bounded sample of a result distribution whose
expression is not a plain field path. Every call is scoped to one team.
"""

from __future__ import annotations

import asyncio
from typing import Any

import linqra.analytics.costs as costs
import linqra.analytics.results as results
import linqra.analytics.runs as runs
import linqra.analytics.timeline as timeline
from linqra.agents.executions import TASK_EXECUTIONS
from linqra.analytics.query import (
    MAX_TOP,
    Page,
    parse_group_by,
    parse_sort,
    time_range,
)
from linqra.assistants.conversations import RUNS as CHAT_RUNS
from linqra.errors import ValidationError
from linqra.llm.usage import USAGE
from linqra.status import ExecutionStatus
from linqra.store import DocumentStore, IndexSpec

__all__ = ["INDEXES", "AnalyticsService"]

INDEXES = [
    IndexSpec(TASK_EXECUTIONS, ("created_at",)),
    IndexSpec(CHAT_RUNS, ("created_at",)),
    IndexSpec(CHAT_RUNS, ("assistant_id", "created_at")),
    IndexSpec(USAGE, ("model", "created_at")),
    IndexSpec(USAGE, ("caller.assistant_id", "created_at")),
    IndexSpec(USAGE, ("caller.execution_id",)),
]
"""What the queries need beyond the indexes their collections already have (executions by
``created_at`` and by ``workflow_id, created_at``, step runs by ``execution_id``, usage by
``created_at``)."""


def _top(n: int) -> int:
    if not 1 <= n <= MAX_TOP:
        raise ValidationError(f"n is 1 to {MAX_TOP}", field="n")
    return n


class AnalyticsService:
    """Analytics of one store; every call names the team."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store
        self._ready = False
        self._lock = asyncio.Lock()

    async def init(self) -> None:
        """Create the indexes the queries use (idempotent; once per service)."""
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                await self.store.ensure_indexes(INDEXES)
                self._ready = True

    async def runs(
        self,
        team_id: str,
        kind: str,
        *,
        start: str | None = None,
        end: str | None = None,
        bucket: str | None = None,
        group_by: str | None = None,
        sort: str | None = None,
        limit: int = 50,
        offset: int = 0,
        **filters: str | None,
    ) -> dict[str, Any]:
        """Runs of ``kind`` (``workflows``, ``tasks``, ``assistants``) per group."""
        if kind not in runs.KINDS:
            raise ValidationError(f"kind is one of {', '.join(runs.KINDS)}", field="kind")
        spec = runs.KINDS[kind]
        unknown = set(filters) - set(spec.filters)
        if unknown:
            raise ValidationError(f"{kind} take no filter {min(unknown)!r}", field=min(unknown))
        page = Page(limit, offset)
        span = time_range(start, end, bucket)
        keys = parse_group_by(group_by, spec.dims, spec.default_group)
        order = parse_sort(sort, runs.SORTS)
        await self.init()
        return await runs.run_stats(
            self.store, team_id, spec, span, keys,
            bucket=bucket, order=order, page=page, filters=filters,
        )  # fmt: skip

    async def steps(
        self,
        team_id: str,
        *,
        workflow_id: str | None = None,
        start: str | None = None,
        end: str | None = None,
        bucket: str | None = None,
        group_by: str | None = None,
        sort: str | None = None,
        limit: int = 50,
        offset: int = 0,
        status: str | None = None,
        target: str | None = None,
    ) -> dict[str, Any]:
        """Step runs of the executions created in the range, per step (or target, executor …)."""
        page = Page(limit, offset)
        span = time_range(start, end, bucket)
        default = ("step", "target") if workflow_id else ("target",)
        keys = parse_group_by(group_by, runs.STEP_DIMS, default)
        order = parse_sort(sort, runs.SORTS)
        return await runs.step_stats(
            self.store, team_id, span, keys, workflow_id=workflow_id, bucket=bucket,
            order=order, page=page, filters={"status": status, "target": target},
        )  # fmt: skip

    async def costs(
        self,
        team_id: str,
        *,
        start: str | None = None,
        end: str | None = None,
        bucket: str | None = None,
        group_by: str | None = None,
        sort: str | None = None,
        limit: int = 50,
        offset: int = 0,
        **filters: str | None,
    ) -> dict[str, Any]:
        """LLM calls, tokens, exact cost and latency per model (provider, assistant, day …)."""
        unknown = set(filters) - set(costs.COST_FILTERS)
        if unknown:
            raise ValidationError(f"costs take no filter {min(unknown)!r}", field=min(unknown))
        page = Page(limit, offset)
        span = time_range(start, end, bucket)
        keys = parse_group_by(group_by, costs.COST_DIMS, ("model",))
        order = parse_sort(sort, costs.COST_SORTS)
        await self.init()
        return await costs.cost_stats(
            self.store, team_id, span, keys,
            bucket=bucket, order=order, page=page, filters=filters,
        )  # fmt: skip

    async def expensive(
        self,
        team_id: str,
        *,
        by: str = "execution",
        n: int = 10,
        start: str | None = None,
        end: str | None = None,
    ) -> dict[str, Any]:
        """The ``n`` costliest runs (their calls summed), assistants, models or single calls."""
        if by not in costs.EXPENSIVE_BY:
            raise ValidationError(f"by is one of {', '.join(costs.EXPENSIVE_BY)}", field="by")
        span = time_range(start, end)
        key = costs.COST_DIMS[by]
        await self.init()
        answer = await costs.cost_stats(
            self.store, team_id, span, (key,), bucket=None, order=(("cost", -1),),
            page=Page(_top(n), 0), filters={}, present=(key.field,),
        )  # fmt: skip
        return {"by": by, "from": span.start, "to": span.end, "items": answer["items"]}

    async def slowest(
        self,
        team_id: str,
        *,
        of: str = "executions",
        workflow_id: str | None = None,
        n: int = 10,
        start: str | None = None,
        end: str | None = None,
    ) -> dict[str, Any]:
        """The ``n`` longest executions or step runs of the executions created in the range."""
        if of not in timeline.SLOWEST_OF:
            raise ValidationError(f"of is one of {', '.join(timeline.SLOWEST_OF)}", field="of")
        span = time_range(start, end)
        return await timeline.slowest(
            self.store, team_id, of, span, workflow_id=workflow_id, n=_top(n)
        )

    async def results(
        self,
        team_id: str,
        workflow_id: str,
        path: str,
        *,
        start: str | None = None,
        end: str | None = None,
        status: str | None = ExecutionStatus.COMPLETED.value,
        sample: int = results.DEFAULT_SAMPLE,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """The workflow's executions counted by the value of ``path`` over their result."""
        page = Page(limit, offset)
        span = time_range(start, end)
        answer = await results.distribution(
            self.store, team_id, workflow_id, path, span,
            status=status, sample=sample, page=page,
        )  # fmt: skip
        return {"from": span.start, "to": span.end, **answer}

    async def timeline(self, team_id: str, execution_id: str) -> dict[str, Any]:
        """The execution's step runs on its own clock, for a Gantt chart."""
        return await timeline.timeline(self.store, team_id, execution_id)
