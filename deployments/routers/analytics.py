"""Analytics: ``/v1/analytics/…`` (rates, latency percentiles, trends, result distributions,
costs, the slowest and costliest) and ``GET /v1/executions/{id}/timeline``.

Read-only, for any member of the team (``Viewer``); every figure is computed in the store over
one team's records (:mod:`linqra.analytics`). Ranges are ``[from, to)`` — ISO dates or instants
with a time zone, by default the 7 days before now — and at most 92 days long (14 with
``bucket=hour``); lists are pages of at most 100 groups. ``docs/analytics.md`` has examples.
"""

import weakref
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from deployments.auth import Viewer
from deployments.deps import Limit, Offset, ResourceId, SystemDep
from deployments.schemas import RecordRoute
from linqra.analytics import AnalyticsService
from linqra.analytics.costs import COST_DIMS
from linqra.analytics.models import (
    AnalyticsPage,
    CostStats,
    ExpensiveList,
    ResultDistribution,
    RunStats,
    SlowList,
    StepStats,
    Timeline,
)
from linqra.analytics.results import DEFAULT_SAMPLE, MAX_SAMPLE
from linqra.analytics.runs import ASSISTANTS, STEP_DIMS, TASKS, WORKFLOWS
from linqra.status import ExecutionStatus, StepStatus
from linqra.system import System

__all__ = ["router"]

router = APIRouter(tags=["analytics"], route_class=RecordRoute)
_SERVICES: "weakref.WeakKeyDictionary[System, AnalyticsService]" = weakref.WeakKeyDictionary()


def analytics(system: System) -> AnalyticsService:
    """The process's analytics service (one per System: its indexes are ensured once)."""
    service = _SERVICES.get(system)
    if service is None:
        service = _SERVICES[system] = AnalyticsService(system.store)
    return service


def _dims(names: Any) -> str:
    return ", ".join(sorted(names))


From = Annotated[
    str | None,
    Query(
        alias="from",
        max_length=64,
        description="start, inclusive: an ISO date or an instant with a time zone "
        "(default: 7 days before `to`)",
    ),
]
To = Annotated[
    str | None, Query(alias="to", max_length=64, description="end, exclusive (default: now)")
]
Bucket = Annotated[
    Literal["hour", "day"] | None,
    Query(description="add a trend dimension: the hour or day (UTC) of each run"),
]
RunSort = Annotated[
    Literal["key", "runs", "failures", "avg", "p50", "p95", "p99", "max"],
    Query(description="by the group keys (then buckets), else by a figure, largest first"),
]
Top = Annotated[int, Query(ge=1, le=100, description="how many")]


def _group_by(names: Any, default: str) -> str:
    return f"up to 3 of: {_dims(names)}, comma-separated (default: {default})"


WorkflowGroups = Annotated[
    str | None, Query(max_length=200, description=_group_by(WORKFLOWS.dims, "workflow"))
]
TaskGroups = Annotated[str | None, Query(max_length=200, description=_group_by(TASKS.dims, "task"))]
AssistantGroups = Annotated[
    str | None, Query(max_length=200, description=_group_by(ASSISTANTS.dims, "assistant"))
]
StepGroups = Annotated[
    str | None,
    Query(
        max_length=200,
        description=_group_by(STEP_DIMS, "step,target with workflow_id, else target"),
    ),
]
CostGroups = Annotated[str | None, Query(max_length=200, description=_group_by(COST_DIMS, "model"))]


@router.get("/v1/analytics/workflows", response_model=AnalyticsPage[RunStats])
async def workflow_analytics(
    system: SystemDep,
    team: Viewer,
    start: From = None,
    end: To = None,
    bucket: Bucket = None,
    group_by: WorkflowGroups = None,
    sort: RunSort = "key",
    workflow_id: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[ExecutionStatus | None, Query()] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Workflow executions created in the range, per workflow: runs by outcome, success and
    failure rates, duration mean, p50, p95, p99 and max (ms); with `bucket`, per hour or day."""
    return await analytics(system).runs(
        team.team_id, "workflows", start=start, end=end, bucket=bucket, group_by=group_by,
        sort=sort, limit=limit, offset=offset, workflow_id=workflow_id,
        status=status.value if status else None,
    )  # fmt: skip


@router.get("/v1/analytics/tasks", response_model=AnalyticsPage[RunStats])
async def task_analytics(
    system: SystemDep,
    team: Viewer,
    start: From = None,
    end: To = None,
    bucket: Bucket = None,
    group_by: TaskGroups = None,
    sort: RunSort = "key",
    task_id: Annotated[str | None, Query(max_length=128)] = None,
    agent_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Agent task executions created in the range, per task (agent, type, trigger, status)."""
    return await analytics(system).runs(
        team.team_id, "tasks", start=start, end=end, bucket=bucket, group_by=group_by,
        sort=sort, limit=limit, offset=offset, task_id=task_id, agent_id=agent_id,
    )  # fmt: skip


@router.get("/v1/analytics/assistants", response_model=AnalyticsPage[RunStats])
async def assistant_analytics(
    system: SystemDep,
    team: Viewer,
    start: From = None,
    end: To = None,
    bucket: Bucket = None,
    group_by: AssistantGroups = None,
    sort: RunSort = "key",
    assistant_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Chat runs (one per answered message) created in the range, per assistant; `failed`
    counts failed and interrupted runs."""
    return await analytics(system).runs(
        team.team_id, "assistants", start=start, end=end, bucket=bucket, group_by=group_by,
        sort=sort, limit=limit, offset=offset, assistant_id=assistant_id,
    )  # fmt: skip


@router.get("/v1/analytics/steps", response_model=AnalyticsPage[StepStats])
async def step_analytics(
    system: SystemDep,
    team: Viewer,
    start: From = None,
    end: To = None,
    bucket: Bucket = None,
    group_by: StepGroups = None,
    sort: RunSort = "key",
    workflow_id: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[StepStatus | None, Query()] = None,
    target: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Step runs of the executions created in the range (of one workflow with `workflow_id`):
    outcomes, cache hits, attempts, error codes, and the latency of the runs that executed.
    `group_by=step,error_code&status=FAILED` is the failure breakdown."""
    return await analytics(system).steps(
        team.team_id, workflow_id=workflow_id, start=start, end=end, bucket=bucket,
        group_by=group_by, sort=sort, limit=limit, offset=offset,
        status=status.value if status else None, target=target,
    )  # fmt: skip


@router.get("/v1/analytics/results", response_model=ResultDistribution)
async def result_distribution(
    system: SystemDep,
    team: Viewer,
    workflow_id: Annotated[str, Query(min_length=1, max_length=128)],
    path: Annotated[
        str,
        Query(
            min_length=1,
            max_length=512,
            description="JMESPath over each result; a plain field path (`label`, `a.b`, `@`) "
            "is counted in the store, any other over the newest `sample` executions",
        ),
    ],
    start: From = None,
    end: To = None,
    status: Annotated[ExecutionStatus | None, Query()] = ExecutionStatus.COMPLETED,
    sample: Annotated[int, Query(ge=1, le=MAX_SAMPLE)] = DEFAULT_SAMPLE,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The workflow's executions counted by the value of `path` over their result, most
    frequent first."""
    return await analytics(system).results(
        team.team_id, workflow_id, path, start=start, end=end,
        status=status.value if status else None, sample=sample, limit=limit, offset=offset,
    )  # fmt: skip


@router.get("/v1/analytics/costs", response_model=AnalyticsPage[CostStats])
async def cost_analytics(
    system: SystemDep,
    team: Viewer,
    start: From = None,
    end: To = None,
    bucket: Bucket = None,
    group_by: CostGroups = None,
    sort: Annotated[
        Literal["key", "cost", "calls", "input_tokens", "output_tokens", "p95"], Query()
    ] = "key",
    model: Annotated[str | None, Query(max_length=200)] = None,
    provider: Annotated[str | None, Query(max_length=64)] = None,
    assistant_id: Annotated[str | None, Query(max_length=128)] = None,
    execution_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """LLM calls made in the range per model (provider, team, assistant, day, price version …):
    tokens by kind, the exact cost (decimal text) with its price versions, latency."""
    return await analytics(system).costs(
        team.team_id, start=start, end=end, bucket=bucket, group_by=group_by, sort=sort,
        limit=limit, offset=offset, model=model, provider=provider,
        assistant_id=assistant_id, execution_id=execution_id,
    )  # fmt: skip


@router.get("/v1/analytics/top/slowest", response_model=SlowList)
async def slowest(
    system: SystemDep,
    team: Viewer,
    of: Annotated[Literal["executions", "steps"], Query()] = "executions",
    workflow_id: Annotated[str | None, Query(max_length=128)] = None,
    n: Top = 10,
    start: From = None,
    end: To = None,
) -> dict[str, Any]:
    """The `n` longest finished executions (or step runs) of the executions created in the
    range, longest first."""
    return await analytics(system).slowest(
        team.team_id, of=of, workflow_id=workflow_id, n=n, start=start, end=end
    )


@router.get("/v1/analytics/top/expensive", response_model=ExpensiveList)
async def most_expensive(
    system: SystemDep,
    team: Viewer,
    by: Annotated[
        Literal["execution", "chat_run", "conversation", "assistant", "model", "call"], Query()
    ] = "execution",
    n: Top = 10,
    start: From = None,
    end: To = None,
) -> dict[str, Any]:
    """The `n` costliest executions (chat runs, conversations, assistants, models: their
    calls summed; or single calls) of the range, costliest first."""
    return await analytics(system).expensive(team.team_id, by=by, n=n, start=start, end=end)


@router.get("/v1/executions/{execution_id}/timeline", response_model=Timeline)
async def execution_timeline(
    system: SystemDep, team: Viewer, execution_id: ResourceId
) -> dict[str, Any]:
    """Every run of every step on the execution's clock (ms since it was created): queued,
    started, finished, attempts, executor, worker, cache hit — the bars of a Gantt chart."""
    return await analytics(system).timeline(team.team_id, execution_id)
