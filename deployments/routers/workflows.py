"""Stored workflows and their versions: ``/v1/workflows…`` (executing one is in ``executions``)."""

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response

from deployments.auth import Member, Viewer
from deployments.deps import IfMatch, JsonObject, Limit, Offset, ResourceId, SystemDep, page
from deployments.schemas import Page, RecordRoute, body_schema
from linqra.workflows.models import Workflow, WorkflowVersion
from linqra.workflows.service import WorkflowInput

__all__ = ["router"]

router = APIRouter(prefix="/v1/workflows", tags=["workflows"], route_class=RecordRoute)
Version = Annotated[int, Path(ge=1)]
WORKFLOW_BODY = body_schema(WorkflowInput)


@router.post("", status_code=201, response_model=Workflow, openapi_extra=WORKFLOW_BODY)
async def create_workflow(system: SystemDep, team: Member, body: JsonObject) -> Workflow:
    """``{name, description?, mode?, params?, timeoutSeconds?, steps}`` or ``{name, request}``
    (a stored Linq request); the first version."""
    return await system.workflows.create(team.team_id, body, created_by=team.user_id)


@router.get("", response_model=Page[Workflow])
async def list_workflows(
    system: SystemDep, team: Viewer, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """The team's workflows at their current version, newest first."""
    items, total = await system.workflows.list_workflows(team.team_id, limit=limit, offset=offset)
    return page(items, total, limit, offset)


@router.get("/{workflow_id}", response_model=Workflow)
async def get_workflow(system: SystemDep, team: Viewer, workflow_id: ResourceId) -> Workflow:
    return await system.workflows.get(team.team_id, workflow_id)


@router.put("/{workflow_id}", response_model=Workflow, openapi_extra=WORKFLOW_BODY)
async def update_workflow(
    system: SystemDep,
    team: Member,
    workflow_id: ResourceId,
    body: JsonObject,
    expected: IfMatch,
) -> Workflow:
    """A new version; with ``If-Match: <version>`` only if that is still the current one (409)."""
    return await system.workflows.update(
        team.team_id, workflow_id, body, created_by=team.user_id, expected_version=expected
    )


@router.delete("/{workflow_id}", status_code=204, response_class=Response)
async def delete_workflow(system: SystemDep, team: Member, workflow_id: ResourceId) -> Response:
    """Hidden from now on; its executions keep their records."""
    await system.workflows.delete(team.team_id, workflow_id)
    return Response(status_code=204)


@router.get("/{workflow_id}/versions", response_model=Page[WorkflowVersion])
async def list_versions(
    system: SystemDep, team: Viewer, workflow_id: ResourceId, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """Every version, newest first."""
    items, total = await system.workflows.versions(
        team.team_id, workflow_id, limit=limit, offset=offset
    )
    return page(items, total, limit, offset)


@router.get("/{workflow_id}/versions/{version}", response_model=WorkflowVersion)
async def get_version(
    system: SystemDep, team: Viewer, workflow_id: ResourceId, version: Version
) -> WorkflowVersion:
    return await system.workflows.version(team.team_id, workflow_id, version)


@router.post("/{workflow_id}/versions/{version}/rollback", status_code=201, response_model=Workflow)
async def rollback(
    system: SystemDep, team: Member, workflow_id: ResourceId, version: Version
) -> Workflow:
    """A new version equal to ``version`` (recorded as ``rolled_back_from``)."""
    return await system.workflows.rollback(
        team.team_id, workflow_id, version, created_by=team.user_id
    )
