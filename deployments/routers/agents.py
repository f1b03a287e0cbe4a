"""Agents, their tasks and task executions (``/v1/agents…``, ``/v1/tasks…``,
``/v1/task-executions…``), and cron previews (``/v1/cron/next``).

Running a task is :class:`~linqra.runs.RunService` (a disabled task is a 409, an idempotency key
returns the first execution, a launcher that is down leaves it PENDING); the routes choose the
status code: 202 while the run is not over, 200 once it is.
"""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, Response

from deployments.auth import Member, Runner, Viewer
from deployments.deps import JsonObject, Limit, Offset, ResourceId, SystemDep, page
from deployments.schemas import ItemList, Page, RecordRoute, body_schema
from linqra.agents.models import (
    AdhocRequest,
    Agent,
    AgentInput,
    ExecuteTaskRequest,
    Task,
    TaskExecution,
    TaskInput,
    TaskVersion,
)
from linqra.auth.principal import Principal
from linqra.scheduling.cron import cron_preview
from linqra.scheduling.models import CronPreview
from linqra.status import TASK_TERMINAL, TaskStatus
from linqra.system import System

__all__ = ["router", "scheduling"]

router = APIRouter(tags=["agents"], route_class=RecordRoute)
scheduling = APIRouter(tags=["scheduling"], route_class=RecordRoute)
Wait = Annotated[bool, Query(description="wait for the task execution's end")]
RUN_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": TaskExecution, "description": "the finished task execution (`wait=true`)"},
    202: {"model": TaskExecution, "description": "the task execution, not finished yet"},
}


async def task_answer(
    system: System, team: Principal, tx: dict[str, Any], wait: bool
) -> JSONResponse:
    if wait:
        tx = await system.runs.wait_task_execution(
            team.team_id, tx["id"], system.settings.http.wait_timeout_seconds
        )
    return JSONResponse(tx, status_code=200 if tx["status"] in TASK_TERMINAL else 202)


# -- agents --------------------------------------------------------------------------------
@router.post(
    "/v1/agents", status_code=201, response_model=Agent, openapi_extra=body_schema(AgentInput)
)
async def create_agent(system: SystemDep, team: Member, body: JsonObject) -> Agent:
    """``{name, description?, enabled?, max_concurrency?}``."""
    return await system.agents.create_agent(team.team_id, body)


@router.get("/v1/agents", response_model=Page[Agent])
async def list_agents(
    system: SystemDep, team: Viewer, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    items, total = await system.agents.list_agents(team.team_id, limit=limit, offset=offset)
    return page(items, total, limit, offset)


@router.get("/v1/agents/{agent_id}", response_model=Agent)
async def get_agent(system: SystemDep, team: Viewer, agent_id: ResourceId) -> Agent:
    return await system.agents.get_agent(team.team_id, agent_id)


@router.put("/v1/agents/{agent_id}", response_model=Agent, openapi_extra=body_schema(AgentInput))
async def update_agent(
    system: SystemDep, team: Member, agent_id: ResourceId, body: JsonObject
) -> Agent:
    return await system.agents.update_agent(team.team_id, agent_id, body)


@router.delete("/v1/agents/{agent_id}", status_code=204, response_class=Response)
async def delete_agent(system: SystemDep, team: Member, agent_id: ResourceId) -> Response:
    """The agent and its tasks; its PENDING and RUNNING task executions are cancelled."""
    await system.agents.delete_agent(team.team_id, agent_id)
    return Response(status_code=204)


@router.post(
    "/v1/agents/{agent_id}/tasks",
    status_code=201,
    response_model=Task,
    openapi_extra=body_schema(TaskInput),
)
async def create_task(
    system: SystemDep, team: Member, agent_id: ResourceId, body: JsonObject
) -> Task:
    """``{name, type, config, priority?, max_retries?, backoff_seconds?, timeout_seconds?,
    enabled?, triggers?}`` — see docs/agents.md for each type's config."""
    return await system.agents.create_task(team.team_id, agent_id, body, created_by=team.user_id)


@router.get("/v1/agents/{agent_id}/tasks", response_model=Page[Task])
async def list_tasks(
    system: SystemDep, team: Viewer, agent_id: ResourceId, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    items, total = await system.agents.list_tasks(
        team.team_id, agent_id, limit=limit, offset=offset
    )
    return page(items, total, limit, offset)


@router.get("/v1/agents/{agent_id}/executions", response_model=Page[TaskExecution])
async def agent_executions(
    system: SystemDep, team: Viewer, agent_id: ResourceId, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """The agent's task executions, newest first."""
    await system.agents.get_agent(team.team_id, agent_id)
    items, total = await system.agents.list_task_executions(
        team.team_id, agent_id=agent_id, limit=limit, offset=offset
    )
    return page(items, total, limit, offset)


# -- tasks ---------------------------------------------------------------------------------
@router.post("/v1/tasks/execute-adhoc", status_code=202, responses=RUN_ANSWERS)
async def execute_adhoc(
    system: SystemDep, team: Runner, body: AdhocRequest, wait: Wait = False
) -> JSONResponse:
    """Run a ``WORKFLOW_EMBEDDED_ADHOC`` task once; it is not stored."""
    tx = await system.runs.run_adhoc(team.team_id, body.task(), input=body.input)
    return await task_answer(system, team, tx, wait)


@router.get("/v1/tasks/{task_id}", response_model=Task)
async def get_task(system: SystemDep, team: Viewer, task_id: ResourceId) -> Task:
    """The task's current version, with its schedules and event triggers."""
    return await system.agents.describe_task(team.team_id, task_id)


@router.put("/v1/tasks/{task_id}", response_model=Task, openapi_extra=body_schema(TaskInput))
async def update_task(
    system: SystemDep, team: Member, task_id: ResourceId, body: JsonObject
) -> Task:
    """A new version of the task; its schedules follow."""
    return await system.agents.update_task(team.team_id, task_id, body, created_by=team.user_id)


@router.delete("/v1/tasks/{task_id}", status_code=204, response_class=Response)
async def delete_task(system: SystemDep, team: Member, task_id: ResourceId) -> Response:
    await system.agents.delete_task(team.team_id, task_id)
    return Response(status_code=204)


@router.get("/v1/tasks/{task_id}/versions", response_model=ItemList[TaskVersion])
async def task_versions(system: SystemDep, team: Viewer, task_id: ResourceId) -> dict[str, Any]:
    """The task's versions, newest first."""
    items = await system.agents.task_versions(team.team_id, task_id)
    return {"items": items, "total": len(items)}


@router.post(
    "/v1/tasks/{task_id}/versions/{version}/rollback", status_code=201, response_model=Task
)
async def rollback_task(
    system: SystemDep, team: Member, task_id: ResourceId, version: Annotated[int, Path(ge=1)]
) -> Task:
    """A new version equal to ``version``."""
    return await system.agents.rollback_task(team.team_id, task_id, version)


@router.post("/v1/tasks/{task_id}/execute", status_code=202, responses=RUN_ANSWERS)
async def execute_task(
    system: SystemDep,
    team: Runner,
    task_id: ResourceId,
    body: ExecuteTaskRequest | None = None,
    wait: Wait = False,
) -> JSONResponse:
    """Run a task now (a MANUAL trigger): 202 and the PENDING task execution, or with
    ``wait=true`` its end. An ``idempotency_key`` seen before returns the first execution."""
    body = body or ExecuteTaskRequest()
    key = f"manual:{task_id}:{body.idempotency_key}" if body.idempotency_key else None
    tx = await system.runs.run_task(
        team.team_id,
        task_id,
        input=body.input,
        trigger={"type": "MANUAL", "user": team.user_id},
        idempotency_key=key,
    )
    return await task_answer(system, team, tx, wait)


@router.post("/v1/tasks/{task_id}/{switch}", response_model=Task)
async def switch_task(
    system: SystemDep,
    team: Member,
    task_id: ResourceId,
    switch: Literal["enable", "disable", "pause", "resume"],
) -> Task:
    """``enable``/``disable`` the task; ``pause``/``resume`` its schedules (resuming starts
    from now: a paused period is not caught up)."""
    if switch in ("enable", "disable"):
        return await system.agents.set_enabled(team.team_id, task_id, enabled=switch == "enable")
    return await system.agents.set_enabled(team.team_id, task_id, paused=switch == "pause")


# -- task executions -----------------------------------------------------------------------
@router.get("/v1/task-executions", response_model=Page[TaskExecution])
async def list_task_executions(
    system: SystemDep,
    team: Viewer,
    agent_id: Annotated[str | None, Query(max_length=128)] = None,
    task_id: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[TaskStatus | None, Query()] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    items, total = await system.agents.list_task_executions(
        team.team_id,
        agent_id=agent_id,
        task_id=task_id,
        status=status.value if status else None,
        limit=limit,
        offset=offset,
    )
    return page(items, total, limit, offset)


@router.get("/v1/task-executions/{tx_id}", response_model=TaskExecution)
async def get_task_execution(system: SystemDep, team: Viewer, tx_id: ResourceId) -> dict[str, Any]:
    return await system.agents.get_task_execution(team.team_id, tx_id)


@router.post("/v1/task-executions/{tx_id}/cancel", response_model=TaskExecution)
async def cancel_task_execution(
    system: SystemDep, team: Runner, tx_id: ResourceId
) -> dict[str, Any]:
    """Cancel: a PENDING one at once, a RUNNING one stops its workflow execution (the agent
    sees the request within a second)."""
    return await system.agents.request_cancel(team.team_id, tx_id)


# -- scheduling ----------------------------------------------------------------------------
@scheduling.get("/v1/cron/next", response_model=CronPreview)
async def cron_next(
    team: Viewer,
    expression: Annotated[str, Query(max_length=256, description="Quartz cron, 6 or 7 fields")],
    timezone: Annotated[str, Query(max_length=64)] = "UTC",
    after: Annotated[str | None, Query(description="ISO-8601 instant; default now")] = None,
    count: Annotated[int, Query(ge=1, le=100)] = 5,
) -> dict[str, Any]:
    """The next fire times of a Quartz cron expression in a time zone, as UTC instants."""
    return cron_preview(expression, timezone, after, count)
