"""What an alert rule can watch: a closed set of signals, each computed in the store from what
Linqra records (one aggregation or count per evaluation, over indexed fields; nothing is loaded
into Python but one group per provider or one oldest record).

========================== ======================================================= ==========
signal                     value                                                   params
========================== ======================================================= ==========
``execution_failure_rate`` FAILED or TIMEOUT / finished executions created in the  workflow_id,
                           window (``null`` below ``min_runs`` finished ones)       min_runs
``team_spend``             the exact LLM cost of the window's calls (usage          model,
                           records) in ``currency`` (default USD)                  provider,
                                                                                   currency
``provider_error_rate``    failed / all LLM calls of the window, of ``provider`` or provider,
                           of the provider with the highest rate                   min_calls
``queue_backlog``          waiting work now: PENDING executions, QUEUED async step queue,
                           runs or PENDING task executions; their ``count`` or the  measure
                           ``oldest_age_seconds``
``schedules_missed``       ``late_fires``: cron fires started late (a misfire,      measure,
                           FIRE_ONCE_NOW) in the window; ``overdue``: active        grace_seconds
                           schedules whose fire is more than ``grace_seconds`` late
                           now (the scheduler is down or behind)
========================== ======================================================= ==========

A misfire under the ``SKIP`` policy starts nothing and is only counted on its schedule
(``misfires``) and in the ``linqra_schedule_misfires_total`` metric; ``overdue`` sees the
scheduler fall behind before that happens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from linqra.agents.executions import TASK_EXECUTIONS
from linqra.clock import iso, parse_iso
from linqra.llm.usage import USAGE
from linqra.scheduling.book import SCHEDULES
from linqra.status import EXECUTION_TERMINAL, ExecutionStatus, StepStatus, TaskStatus
from linqra.store import DocumentStore
from linqra.store.aggregation import Aggregation, Key, Measure
from linqra.workflows.records import EXECUTIONS, STEP_RUNS

__all__ = ["SIGNALS", "Param", "Reading", "Signal", "Span"]

Value = Decimal | None


@dataclass(frozen=True, slots=True)
class Span:
    """The window ``[start, end)`` a rule looks at, and the instant of the evaluation."""

    start: str
    end: str
    now: datetime

    @classmethod
    def ending(cls, now: datetime, seconds: int) -> Span:
        return cls(iso(now - timedelta(seconds=seconds)), iso(now), now)

    def where(self) -> dict[str, str]:
        return {"$gte": self.start, "$lt": self.end}


@dataclass(frozen=True, slots=True)
class Reading:
    """A signal's value (``None``: no data, which never fires) and what it was computed from."""

    value: Value
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Param:
    description: str
    kind: Literal["str", "int"] = "str"
    choices: tuple[str, ...] = ()
    default: str | int | None = None
    minimum: int = 0
    maximum: int = 1_000_000


Measurer = Callable[[DocumentStore, str, Mapping[str, Any], Span], Awaitable[Reading]]


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    description: str
    unit: Literal["ratio", "count", "money", "seconds"]
    windowed: bool
    params: Mapping[str, Param]
    measure: Measurer

    def unit_of(self, params: Mapping[str, Any]) -> str:
        if params.get("measure") == "oldest_age_seconds":
            return "seconds"
        return self.unit


def _rate(part: int, whole: int) -> Decimal:
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.000001"))


async def _failure_rate(
    store: DocumentStore, team: str, params: Mapping[str, Any], span: Span
) -> Reading:
    where: dict[str, Any] = {
        "created_at": span.where(),
        "status": {"$in": sorted(EXECUTION_TERMINAL)},
    }
    if params.get("workflow_id"):
        where["workflow_id"] = params["workflow_id"]
    failed = (ExecutionStatus.FAILED.value, ExecutionStatus.TIMEOUT.value)
    found = await store.aggregate(
        team,
        Aggregation(
            EXECUTIONS, (),
            (Measure("finished", "count"), Measure("failed", "count_in", "status", values=failed)),
            where=where,
        ),
    )  # fmt: skip
    row: dict[str, Any] = found.rows[0] if found.rows else {"finished": 0, "failed": 0}
    finished, bad = int(row["finished"]), int(row["failed"] or 0)
    detail = {"finished": finished, "failed": bad}
    if finished < int(params["min_runs"]) or finished == 0:
        return Reading(None, detail)
    return Reading(_rate(bad, finished), detail)


async def _spend(store: DocumentStore, team: str, params: Mapping[str, Any], span: Span) -> Reading:
    where: dict[str, Any] = {"created_at": span.where(), "currency": params["currency"]}
    for name in ("model", "provider"):
        if params.get(name):
            where[name] = params[name]
    found = await store.aggregate(
        team,
        Aggregation(
            USAGE, (), (Measure("calls", "count"), Measure("cost", "decimal_sum", "cost")),
            where=where,
        ),
    )  # fmt: skip
    row: dict[str, Any] = found.rows[0] if found.rows else {"calls": 0, "cost": "0"}
    cost = Decimal(str(row["cost"] or "0"))
    return Reading(cost, {"priced_calls": int(row["calls"]), "currency": params["currency"]})


async def _provider_errors(
    store: DocumentStore, team: str, params: Mapping[str, Any], span: Span
) -> Reading:
    where: dict[str, Any] = {"created_at": span.where()}
    if params.get("provider"):
        where["provider"] = params["provider"]
    found = await store.aggregate(
        team,
        Aggregation(
            USAGE, (Key("provider", "provider"),),
            (Measure("calls", "count"), Measure("failed", "count_in", "status", values=("failed",))),
            where=where, order=(("failed", -1),), limit=1000,
        ),
    )  # fmt: skip
    worst: tuple[Decimal, dict[str, Any]] | None = None
    for row in found.rows:
        calls, failed = int(row["calls"]), int(row["failed"] or 0)
        if calls < int(params["min_calls"]):
            continue
        rate = _rate(failed, calls)
        if worst is None or rate > worst[0]:
            worst = (rate, {"provider": row["provider"], "calls": calls, "failed": failed})
    if worst is None:
        return Reading(None, {"providers": len(found.rows)})
    return Reading(worst[0], worst[1])


_QUEUES = {  # queue -> (collection, waiting status, field whose instant it waits since)
    "executions": (EXECUTIONS, ExecutionStatus.PENDING.value, "created_at"),
    "async_steps": (STEP_RUNS, StepStatus.QUEUED.value, "queued_at"),
    "tasks": (TASK_EXECUTIONS, TaskStatus.PENDING.value, "created_at"),
}


async def _backlog(
    store: DocumentStore, team: str, params: Mapping[str, Any], span: Span
) -> Reading:
    collection, status, since = _QUEUES[params["queue"]]
    where = {"status": status}
    if params["measure"] == "count":
        count = await store.count(collection, team, where)
        return Reading(Decimal(count), {"queue": params["queue"], "waiting": count})
    oldest = await store.find(collection, team, where, sort=[(since, 1)], limit=1)
    if not oldest or not oldest[0].get(since):
        return Reading(Decimal(0), {"queue": params["queue"], "waiting": 0})
    age = (span.now - parse_iso(oldest[0][since])).total_seconds()
    detail = {"queue": params["queue"], "oldest_id": oldest[0]["id"], "since": oldest[0][since]}
    return Reading(Decimal(str(round(max(age, 0.0), 3))), detail)


async def _missed(
    store: DocumentStore, team: str, params: Mapping[str, Any], span: Span
) -> Reading:
    if params["measure"] == "overdue":
        cutoff = iso(span.now - timedelta(seconds=int(params["grace_seconds"])))
        where: dict[str, Any] = {"active": True, "next_fire_at": {"$lt": cutoff}}
        count = await store.count(SCHEDULES, team, where)
        return Reading(Decimal(count), {"overdue_schedules": count, "due_before": cutoff})
    where = {"created_at": span.where(), "trigger.type": "CRON", "trigger.misfire": True}
    count = await store.count(TASK_EXECUTIONS, team, where)
    return Reading(Decimal(count), {"late_fires": count})


_MIN_RUNS = Param("fewer finished runs in the window give no value", "int", default=1, minimum=1)
SIGNALS: dict[str, Signal] = {
    s.name: s
    for s in (
        Signal(
            "execution_failure_rate",
            "FAILED or TIMEOUT executions / finished executions created in the window",
            "ratio", True,
            {"workflow_id": Param("only this workflow's executions"), "min_runs": _MIN_RUNS},
            _failure_rate,
        ),
        Signal(
            "team_spend",
            "the exact cost of the team's LLM calls made in the window",
            "money", True,
            {"model": Param("only calls to this model"),
             "provider": Param("only calls to this provider"),
             "currency": Param("the currency summed", default="USD")},
            _spend,
        ),
        Signal(
            "provider_error_rate",
            "failed / all LLM calls in the window, of one provider or the worst one",
            "ratio", True,
            {"provider": Param("only this provider (default: the one with the highest rate)"),
             "min_calls": Param("providers with fewer calls give no value", "int", default=1,
                                minimum=1)},
            _provider_errors,
        ),
        Signal(
            "queue_backlog",
            "work waiting now: its count or the age of the oldest, in seconds",
            "count", False,
            {"queue": Param("which queue", choices=tuple(_QUEUES), default="executions"),
             "measure": Param("what is measured", choices=("count", "oldest_age_seconds"),
                              default="count")},
            _backlog,
        ),
        Signal(
            "schedules_missed",
            "cron fires started late in the window, or schedules overdue now",
            "count", True,
            {"measure": Param("late_fires (in the window) or overdue (now)",
                              choices=("late_fires", "overdue"), default="late_fires"),
             "grace_seconds": Param("overdue: how late a fire may be", "int", default=60,
                                    maximum=86_400)},
            _missed,
        ),
    )
}  # fmt: skip
"""Every signal by name."""
