"""The analytics answers as the API returns them (each keeps any other field: ``extra="allow"``).

An item carries its ``group_by`` dimensions under their names (``workflow``, ``step``,
``model`` …) and, with a ``bucket``, the instant its bucket starts.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AnalyticsPage",
    "CostStats",
    "Durations",
    "ExpensiveList",
    "ResultDistribution",
    "ResultValue",
    "RunStats",
    "SlowList",
    "SlowRun",
    "StepStats",
    "Timeline",
    "TimelineStep",
]

T = TypeVar("T")
Number = int | float


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Durations(_Open):
    """Milliseconds: mean, nearest-rank percentiles and the longest (``null`` with no values)."""

    avg: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None


class _Grouped(_Open):
    bucket: str | None = Field(default=None, description="the instant the hour or day starts")


class RunStats(_Grouped):
    """Runs of one group (workflow executions, task executions or assistant chat runs)."""

    runs: int = Field(description="runs created in the range")
    completed: int
    failed: int = Field(description="FAILED (chat runs: failed or interrupted)")
    timed_out: int
    cancelled: int
    active: int = Field(description="not finished yet (pending, queued or running)")
    finished: int
    success_rate: float | None = Field(description="completed / finished")
    failure_rate: float | None = Field(description="(failed + timed_out) / finished")
    duration_ms: Durations


class StepStats(_Grouped):
    """Step runs of one group: outcomes, cache hits, attempts and latency of executed runs."""

    runs: int
    completed: int
    failed: int
    timed_out: int
    cancelled: int
    skipped: int
    cache_hits: int
    success_rate: float | None
    failure_rate: float | None
    attempts_avg: float | None = Field(description="attempts per executed run (retries + 1)")
    attempts_max: int | None
    error_codes: list[str] = Field(description="the error codes of this group's failed runs")
    duration_ms: Durations = Field(description="of runs that executed (no cache hit, no skip)")


class CostStats(_Grouped):
    """LLM calls of one group: tokens by kind, the exact cost (decimal text) and latency."""

    calls: int
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost: str = Field(description="exact sum of the priced calls, in `currencies`")
    currencies: list[str]
    unpriced_calls: int = Field(description="calls without a price (not in `cost`)")
    price_versions: list[str] = Field(description="the price versions the costs were computed at")
    latency_ms: Durations


class ResultValue(_Open):
    value: Any = Field(description="a value of the expression over the execution's result")
    count: int


class ResultDistribution(_Open):
    """Executions counted by the value of a JMESPath expression over their result."""

    workflow_id: str
    path: str
    exact: bool = Field(
        description="every matching execution was counted (a plain field path is counted in "
        "the store; any other expression over the newest `sample` executions)"
    )
    matched: int = Field(description="executions in the range with the status asked for")
    scanned: int = Field(description="executions whose result was evaluated")
    items: list[ResultValue]
    total: int = Field(description="distinct values")
    limit: int
    offset: int
    next_offset: int | None


class SlowRun(_Open):
    """One execution or step run, by its duration."""

    id: str
    duration_ms: float
    status: str | None = None


class SlowList(_Open):
    of: str
    items: list[SlowRun]


class ExpensiveList(_Open):
    by: str
    items: list[CostStats]


class AnalyticsPage(BaseModel, Generic[T]):
    """One page of groups, in the range ``[from, to)``."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="the range's start (inclusive)")
    to: str = Field(description="the range's end (exclusive)")
    bucket: str | None = None
    group_by: list[str]
    items: list[T]
    total: int = Field(description="groups (times buckets) in the whole answer")
    limit: int
    offset: int
    next_offset: int | None


class TimelineStep(_Open):
    """One run of one step, placed on the execution's clock (ms since it was created)."""

    step: int
    run: int
    target: str | None = None
    action: str | None = None
    executor: str | None = None
    status: str
    queued_at: str | None = Field(default=None, description="async steps: when it was queued")
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: Number | None = None
    attempts: int | None = None
    cache_hit: bool | None = None
    worker: str | None = None
    error_code: str | None = None
    queued_ms: Number | None = Field(default=None, description="offset of queued_at")
    start_ms: Number | None = Field(default=None, description="offset of started_at")
    end_ms: Number | None = Field(default=None, description="offset of finished_at")


class Timeline(_Open):
    """An execution's step runs on one clock, ready for a Gantt chart."""

    execution_id: str
    workflow_id: str | None = None
    workflow_name: str | None = None
    status: str
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: Number | None = None
    wait_ms: Number | None = Field(default=None, description="created → started")
    steps: list[TimelineStep]
    attempts: int = Field(description="attempts over every step run")
    cache_hits: int
