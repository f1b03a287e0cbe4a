"""Running workflows: ``POST /v1/workflows/{id}/execute`` and ``/v1/executions…``.

Starting, waiting for, cancelling and resuming are :class:`~linqra.runs.RunService` calls (a
runner that is down leaves the record PENDING; a waiter whose runner restarted reads the
store); the routes choose the status code: 202 while the run is not over, 200 once it is.
"""

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from deployments.auth import Require, Runner, Viewer
from deployments.deps import Limit, Offset, ResourceId, SystemDep, page
from deployments.schemas import SSE_CONTENT, SSE_HEADERS, Page, RecordRoute
from linqra.auth.principal import Permission, Principal
from linqra.errors import LinqraError
from linqra.status import EXECUTION_TERMINAL, ExecutionStatus
from linqra.system import System
from linqra.workflows.models import Execution, ExecutionAccepted, ExecutionSummary

__all__ = ["STREAM_POLL_SECONDS", "ExecuteRequest", "answer", "router"]

router = APIRouter(tags=["executions"], route_class=RecordRoute)
Wait = Annotated[bool, Query(description="wait for the finished record")]
RunBoundWorkflow = Annotated[Principal, Depends(Require(Permission.EXECUTE, widget=True))]
STREAM_POLL_SECONDS = 0.25
"""How often ``GET /v1/executions/{id}/stream`` reads the record while it changes; while it does
not, the reads slow down to one every :data:`STREAM_IDLE_POLL_SECONDS`."""
STREAM_IDLE_POLL_SECONDS = 2.0
LIVENESS_FIELDS = ("heartbeat_at", "runner_id")  # rewritten while a run is alive: not a change

RUN_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": Execution, "description": "the finished record (`wait=true`)"},
    202: {
        "model": ExecutionAccepted | Execution,
        "description": "started: a link to the record, or (`wait=true`) the record so far "
        "after `http.wait_timeout_seconds`",
    },
}


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict)
    executedBy: str | None = Field(default=None, max_length=256)


def accepted(execution_id: str) -> JSONResponse:
    """202 with a link to the record."""
    link = {"self": f"/v1/executions/{execution_id}"}
    return JSONResponse(
        {"id": execution_id, "status": ExecutionStatus.RUNNING, "links": link}, status_code=202
    )


async def answer(system: System, team: Principal, execution_id: str, wait: bool) -> JSONResponse:
    """202 with a link, or (``wait``) the record once terminal: 200, else 202 with it as it is."""
    if not wait:
        return accepted(execution_id)
    record = await system.runs.wait_execution(
        team.team_id, execution_id, system.settings.http.wait_timeout_seconds
    )
    return finished(team, record)


def finished(team: Principal, record: dict[str, Any]) -> JSONResponse:
    """The record: 200 once terminal, else 202 with it as it is."""
    status = 200 if record["status"] in EXECUTION_TERMINAL else 202
    if team.source == "widget":  # a public page sees the outcome, not the steps' inputs
        record = {k: record.get(k) for k in ("id", "status", "result", "error")}
    return JSONResponse(record, status_code=status)


@router.post("/v1/workflows/{workflow_id}/execute", status_code=202, responses=RUN_ANSWERS)
async def execute(
    system: SystemDep,
    team: RunBoundWorkflow,
    workflow_id: ResourceId,
    body: Annotated[ExecuteRequest | None, Body()] = None,
    wait: Wait = False,
) -> JSONResponse:
    """Run the workflow's current version with ``params`` (also with a public widget key bound
    to this workflow)."""
    team.require_resource(workflow_id)
    request = body or ExecuteRequest()
    executed_by = team.executed_by(request.executedBy)
    if wait:  # one call to the runner: submit and wait
        record = await system.runs.run_execution(
            team.team_id,
            system.settings.http.wait_timeout_seconds,
            workflow_id=workflow_id,
            params=request.params,
            executed_by=executed_by,
        )
        return finished(team, record)
    execution = await system.runs.start_execution(
        team.team_id, workflow_id=workflow_id, params=request.params, executed_by=executed_by
    )
    return accepted(execution["id"])


@router.get("/v1/executions", response_model=Page[ExecutionSummary])
async def list_executions(
    system: SystemDep,
    team: Viewer,
    limit: Limit = 50,
    offset: Offset = 0,
    workflow_id: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[ExecutionStatus | None, Query()] = None,
) -> dict[str, Any]:
    """The team's executions, newest first (without their definitions and steps)."""
    items, total = await system.workflows.executions.page(
        team.team_id,
        workflow_id=workflow_id,
        status=status.value if status else None,
        limit=limit,
        offset=offset,
    )
    for item in items:
        item.pop("definition", None)
    return page(items, total, limit, offset)


@router.get("/v1/executions/{execution_id}", response_model=Execution)
async def get_execution(
    system: SystemDep,
    team: Viewer,
    execution_id: ResourceId,
    history: Annotated[bool, Query(description="every run of every step")] = False,
) -> dict[str, Any]:
    """The execution and its steps (the latest run of each; every run with ``history``)."""
    return await system.workflows.executions.full_record(
        team.team_id, execution_id, history=history
    )


@router.post("/v1/executions/{execution_id}/cancel", response_model=Execution)
async def cancel(system: SystemDep, team: Runner, execution_id: ResourceId) -> dict[str, Any]:
    """Stop a running execution: its running steps are cancelled and recorded CANCELLED."""
    return await system.runs.cancel_execution(team.team_id, execution_id)


@router.post("/v1/executions/{execution_id}/resume", status_code=202, responses=RUN_ANSWERS)
async def resume(
    system: SystemDep, team: Runner, execution_id: ResourceId, wait: Wait = False
) -> JSONResponse:
    """Run a FAILED, TIMEOUT or CANCELLED execution again from its unfinished steps."""
    await system.runs.resume_execution(team.team_id, execution_id)
    return await answer(system, team, execution_id, wait)


@router.get(
    "/v1/executions/{execution_id}/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": SSE_CONTENT, "description": "the record each time it changes"}},
)
async def stream_execution(
    system: SystemDep,
    team: Viewer,
    execution_id: ResourceId,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="the id of the last event seen")
    ] = None,
) -> EventSourceResponse:
    """Follow a run live: an ``execution`` event with the whole record (its steps' latest runs)
    now and each time it changes — a step starts, retries, finishes — until it is finished
    (and its ``async`` steps too).
    The record is read every 0.25 s while it changes, less often (up to every 2 s) while it does
    not; the runner's liveness fields (``heartbeat_at``, ``runner_id``) are left out. Each
    event's id is a digest of the record it carries, so a client that reconnects with
    ``Last-Event-ID`` is sent the next change, not what it has."""
    executions = system.workflows.executions
    record = await executions.full_record(team.team_id, execution_id)  # an unknown id: 404

    async def events() -> AsyncIterator[ServerSentEvent]:
        seen, current, pause = last_event_id, record, STREAM_POLL_SECONDS
        while True:
            shown = {k: v for k, v in current.items() if k not in LIVENESS_FIELDS}
            body = json.dumps(shown, separators=(",", ":"), sort_keys=True, default=str)
            digest = hashlib.sha256(body.encode()).hexdigest()[:20]
            if digest != seen:
                seen, pause = digest, STREAM_POLL_SECONDS
                yield ServerSentEvent(body, event="execution", id=digest)
            else:  # nothing new: read less often (a run left PENDING may wait a long time)
                pause = min(pause * 2, STREAM_IDLE_POLL_SECONDS)
            if current["status"] in EXECUTION_TERMINAL and not current.get("pending_async_steps"):
                return  # finished, and no async step still to report
            await asyncio.sleep(pause)
            try:
                current = await executions.full_record(team.team_id, execution_id)
            except LinqraError as exc:  # the store went away (or the record with its team)
                yield ServerSentEvent(json.dumps(exc.to_dict()), event="error")
                return

    return EventSourceResponse(events(), ping=15, headers=SSE_HEADERS)
