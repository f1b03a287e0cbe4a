"""Who you are and who may do what: ``/v1/me``, teams, members, API keys and the audit log."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel

from deployments.auth import Admin, Require, Viewer
from deployments.deps import JsonObject, Limit, Offset, ResourceId, SystemDep, page
from deployments.schemas import Page, RecordRoute, body_schema
from linqra.auth.audit import AuditEvent
from linqra.auth.directory import PLATFORM, Member, MemberInput, TeamInput, TeamRecord
from linqra.auth.keys import ApiKey, ApiKeyInput, IssuedKey
from linqra.auth.principal import Permission, Principal, Role
from linqra.clock import query_instant
from linqra.errors import Forbidden
from linqra.llm.budgets import KEY_BUDGET

__all__ = ["router"]

router = APIRouter(tags=["access"], route_class=RecordRoute)

CreateTeam = Annotated[Principal, Depends(Require(Permission.MANAGE_ACCESS, "team.create"))]
ListAccess = Annotated[Principal, Depends(Require(Permission.MANAGE_ACCESS))]
SetMember = Annotated[Principal, Depends(Require(Permission.MANAGE_ACCESS, "member.set"))]
RemoveMember = Annotated[Principal, Depends(Require(Permission.MANAGE_ACCESS, "member.remove"))]
CreateKey = Annotated[Principal, Depends(Require(Permission.MANAGE_ACCESS, "api_key.create"))]
RevokeKey = Annotated[Principal, Depends(Require(Permission.MANAGE_ACCESS, "api_key.revoke"))]
RotateKey = Annotated[Principal, Depends(Require(Permission.MANAGE_ACCESS, "api_key.rotate"))]


class Me(BaseModel):
    team_id: str
    role: Role
    source: str
    user_id: str | None
    teams: list[str]
    scopes: list[Permission] | None
    key_id: str | None
    platform_admin: bool


@router.get("/v1/me", response_model=Me)
async def me(team: Viewer) -> dict[str, Any]:
    """The caller as the gateway sees it: team, role, where the credential came from."""
    return {
        "team_id": team.team_id,
        "role": team.role,
        "source": team.source,
        "user_id": team.user_id,
        "teams": list(team.teams),
        "scopes": sorted(team.scopes) if team.scopes is not None else None,
        "key_id": team.key_id,
        "platform_admin": team.platform_admin,
    }


@router.post(
    "/v1/teams", status_code=201, response_model=TeamRecord, openapi_extra=body_schema(TeamInput)
)
async def create_team(system: SystemDep, team: CreateTeam, body: JsonObject) -> TeamRecord:
    """A new team and its first admin (platform admins: the ``gateway_admin`` role)."""
    if not team.platform_admin:
        raise Forbidden("creating teams needs the platform admin role")
    return await system.authenticator.directory.create_team(body, created_by=team.actor)


@router.get("/v1/members", response_model=Page[Member])
async def list_members(
    system: SystemDep, team: ListAccess, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """The team's stored memberships (roles granted by the identity provider's groups are not
    listed: they live there)."""
    items, total = await system.authenticator.directory.members(
        team.team_id, limit=limit, offset=offset
    )
    return page(items, total, limit, offset)


@router.put("/v1/members/{user_id}", response_model=Member, openapi_extra=body_schema(MemberInput))
async def set_member(
    system: SystemDep, team: SetMember, user_id: ResourceId, body: JsonObject
) -> Member:
    """Add a member or change their role/status: ``{"role": "viewer|member|admin",
    "status"?: "active|suspended"}``. The last active admin cannot be demoted (409)."""
    member = await system.authenticator.directory.set_member(
        team.team_id, user_id, body, by=team.actor
    )
    # the keys they made never exceed what they are now
    keeps = member.role if member.status == "active" else None
    await system.authenticator.keys.cap_creator(team.team_id, user_id, keeps)
    return member


@router.delete("/v1/members/{user_id}", status_code=204, response_class=Response)
async def remove_member(system: SystemDep, team: RemoveMember, user_id: ResourceId) -> Response:
    await system.authenticator.directory.remove_member(team.team_id, user_id)
    await system.authenticator.keys.cap_creator(team.team_id, user_id, None)  # their keys go
    return Response(status_code=204)


@router.post(
    "/v1/api-keys",
    status_code=201,
    response_model=IssuedKey,
    openapi_extra=body_schema(ApiKeyInput),
)
async def create_api_key(system: SystemDep, team: CreateKey, body: JsonObject) -> IssuedKey:
    """A team API key (``kind: api``, with ``scopes``) or a public widget key (``kind:
    widget``, bound to ``resource`` and usable only from ``allowed_origins``). The whole key is
    in this answer only."""
    issued = await system.authenticator.keys.issue(
        team.team_id, body, creator_role=team.role, created_by=team.actor
    )
    if issued.spend_cap is not None:  # the runs it starts are charged to a budget of its own
        await system.llm.budgets.set(
            team.team_id,
            issued.spend_cap,
            "day" if issued.spend_period == "day" else "month",
            budget_id=KEY_BUDGET + issued.id,
        )
    return issued


@router.get("/v1/api-keys", response_model=Page[ApiKey])
async def list_api_keys(
    system: SystemDep, team: ListAccess, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    items, total = await system.authenticator.keys.list_keys(
        team.team_id, limit=limit, offset=offset
    )
    return page(items, total, limit, offset)


@router.delete("/v1/api-keys/{key_id}", response_model=ApiKey)
async def revoke_api_key(system: SystemDep, team: RevokeKey, key_id: ResourceId) -> ApiKey:
    """Revoked at once here, and on every gateway replica within ``auth.key_cache_seconds``."""
    return await system.authenticator.keys.revoke(team.team_id, key_id)


@router.post("/v1/api-keys/{key_id}/rotate", response_model=IssuedKey)
async def rotate_api_key(system: SystemDep, team: RotateKey, key_id: ResourceId) -> IssuedKey:
    """A new secret for the key (a widget key's page gets the new one; nothing else changes);
    the old secret stops working within ``auth.key_cache_seconds``. Shown in this answer only."""
    return await system.authenticator.keys.rotate(team.team_id, key_id)


@router.get("/v1/audit", response_model=Page[AuditEvent])
async def audit(
    system: SystemDep,
    team: Admin,
    action: Annotated[str | None, Query(max_length=100)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    outcome: Annotated[str | None, Query(pattern="^(success|denied|failure)$")] = None,
    since: Annotated[str | None, Query(max_length=40, description="ISO-8601 instant")] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    scope: Annotated[
        Literal["team", "platform"],
        Query(description="platform: the platform's own log (platform admins only)"),
    ] = "team",
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The team's audit events, newest first; ``scope=platform``: the platform's log (refused
    sign-ins to teams, team creation, master-key rotation), for platform admins."""
    if scope == "platform" and not team.platform_admin:
        raise Forbidden("the platform's audit log needs the platform admin role")
    since, until = query_instant(since, "since"), query_instant(until, "until")
    items, total = await system.audit.events(
        PLATFORM if scope == "platform" else team.team_id,
        action=action,
        actor=actor,
        outcome=outcome,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return page(items, total, limit, offset)
