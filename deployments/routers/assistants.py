"""Stored assistants and their versions: ``/v1/assistants…`` (chatting with one comes later)."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from deployments.auth import Member, Viewer
from deployments.deps import IfMatch, JsonObject, Limit, Offset, ResourceId, SystemDep, page
from deployments.schemas import Page, RecordRoute, body_schema
from linqra.assistants.models import Assistant, AssistantInput, AssistantStatus, AssistantVersion

__all__ = ["router"]

router = APIRouter(prefix="/v1/assistants", tags=["assistants"], route_class=RecordRoute)
Version = Annotated[int, Path(ge=1)]
ASSISTANT_BODY = body_schema(AssistantInput)


@router.post("", status_code=201, response_model=Assistant, openapi_extra=ASSISTANT_BODY)
async def create_assistant(system: SystemDep, team: Member, body: JsonObject) -> Assistant:
    """The first version; the tasks and collections it names must be the team's own."""
    return await system.assistants.create(team.team_id, body, created_by=team.user_id)


@router.get("", response_model=Page[Assistant])
async def list_assistants(
    system: SystemDep,
    team: Viewer,
    status: Annotated[AssistantStatus | None, Query(description="only this status")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The team's assistants at their current version, newest first."""
    items, total = await system.assistants.list(
        team.team_id, status=status, limit=limit, offset=offset
    )
    return page(items, total, limit, offset)


@router.get("/{assistant_id}", response_model=Assistant)
async def get_assistant(system: SystemDep, team: Viewer, assistant_id: ResourceId) -> Assistant:
    return await system.assistants.get(team.team_id, assistant_id)


@router.put("/{assistant_id}", response_model=Assistant, openapi_extra=ASSISTANT_BODY)
async def update_assistant(
    system: SystemDep,
    team: Member,
    assistant_id: ResourceId,
    body: JsonObject,
    expected: IfMatch,
) -> Assistant:
    """A new version; with ``If-Match: <version>`` only if that is still the current one (409)."""
    return await system.assistants.update(
        team.team_id, assistant_id, body, created_by=team.user_id, expected_version=expected
    )


@router.delete("/{assistant_id}", status_code=204, response_class=Response)
async def delete_assistant(system: SystemDep, team: Member, assistant_id: ResourceId) -> Response:
    """Hidden from now on."""
    await system.assistants.delete(team.team_id, assistant_id)
    return Response(status_code=204)


@router.get("/{assistant_id}/versions", response_model=Page[AssistantVersion])
async def list_versions(
    system: SystemDep, team: Viewer, assistant_id: ResourceId, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """Every version, newest first."""
    items, total = await system.assistants.versions(
        team.team_id, assistant_id, limit=limit, offset=offset
    )
    return page(items, total, limit, offset)


@router.get("/{assistant_id}/versions/{version}", response_model=AssistantVersion)
async def get_version(
    system: SystemDep, team: Viewer, assistant_id: ResourceId, version: Version
) -> AssistantVersion:
    return await system.assistants.version(team.team_id, assistant_id, version)


@router.post(
    "/{assistant_id}/versions/{version}/rollback", status_code=201, response_model=Assistant
)
async def rollback(
    system: SystemDep, team: Member, assistant_id: ResourceId, version: Version
) -> Assistant:
    """A new version equal to ``version`` (recorded as ``rolled_back_from``), its tasks and
    collections checked again."""
    return await system.assistants.rollback(
        team.team_id, assistant_id, version, created_by=team.user_id
    )
