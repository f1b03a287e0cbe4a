"""What routes receive from FastAPI: the process's :class:`~linqra.system.System`, the team,
paging parameters and ids, each as an ``Annotated`` dependency a route names in its signature.

The system is the one :func:`deployments.app.create_app` put on ``app.state`` (handed in by the
Serve replica, or opened by the app's lifespan in tests). The team comes from the ``X-Team-Id``
header (required, validated; no default team) until authentication lands; it is built once per
request as a :class:`~linqra.tenancy.TeamContext`, so only its source will change.
"""

# no "from __future__ import annotations": FastAPI reads these annotations at runtime

from typing import Annotated, Any

from fastapi import Body, Depends, Header, Path, Query
from starlette.requests import Request

from linqra.system import System
from linqra.tenancy import TeamContext, validate_team_id

__all__ = [
    "JsonObject",
    "Limit",
    "ModelId",
    "Offset",
    "ResourceId",
    "SystemDep",
    "Team",
    "get_system",
    "page",
    "team_context",
]


def get_system(request: Request) -> System:
    """The system the app was created with (or its lifespan opened)."""
    system: System | None = getattr(request.app.state, "system", None)
    if system is None:  # a test client used without ``with``: the lifespan did not run
        raise RuntimeError("the app has no System: use create_app(system) or run its lifespan")
    return system


def team_context(
    x_team_id: Annotated[
        str | None, Header(alias="X-Team-Id", description="your team's id")
    ] = None,
) -> TeamContext:
    return TeamContext(validate_team_id(x_team_id), source="header")


SystemDep = Annotated[System, Depends(get_system)]
Team = Annotated[TeamContext, Depends(team_context)]
Limit = Annotated[int, Query(ge=1, le=100, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="items to skip")]
ResourceId = Annotated[str, Path(min_length=1, max_length=128)]
ModelId = Annotated[str, Path(min_length=3, max_length=200, pattern=r"^[\w.-]+:[\w.:/-]+$")]
JsonObject = Annotated[dict[str, Any], Body()]


def page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    """The page envelope every list answers with (see :class:`deployments.schemas.Page`)."""
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if offset + limit < total else None,
    }
