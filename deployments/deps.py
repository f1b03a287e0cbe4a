"""What routes receive from FastAPI: the process's :class:`~linqra.system.System`, paging
parameters and ids, each as an ``Annotated`` dependency a route names in its signature. The
caller and what it may do come from :mod:`deployments.auth`.

The system is the one :func:`deployments.app.create_app` put on ``app.state`` (handed in by the
Serve replica, or opened by the app's lifespan in tests).
"""

# no "from __future__ import annotations": FastAPI reads these annotations at runtime

from typing import Annotated, Any

from fastapi import Body, Depends, Header, Path, Query
from starlette.requests import Request

from linqra.errors import ValidationError
from linqra.system import System

__all__ = [
    "IfMatch",
    "JsonObject",
    "Limit",
    "ModelId",
    "Offset",
    "ResourceId",
    "SystemDep",
    "get_system",
    "page",
]


async def get_system(request: Request) -> System:
    """The system the app was created with (or its lifespan opened). ``async`` like every
    dependency here: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per
    request (5 % of a read's CPU under load)."""
    system: System | None = getattr(request.app.state, "system", None)
    if system is None:  # a test client used without ``with``: the lifespan did not run
        raise RuntimeError("the app has no System: use create_app(system) or run its lifespan")
    return system


SystemDep = Annotated[System, Depends(get_system)]
Limit = Annotated[int, Query(ge=1, le=100, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="items to skip")]
ResourceId = Annotated[str, Path(min_length=1, max_length=128)]
ModelId = Annotated[str, Path(min_length=3, max_length=200, pattern=r"^[\w.-]+:[\w.:/-]+$")]
JsonObject = Annotated[dict[str, Any], Body()]


async def if_match(
    value: Annotated[
        str | None, Header(alias="If-Match", description="expected current version")
    ] = None,
) -> int | None:
    """``If-Match: <version>`` (quoted or not) as the version a write expects, else ``None``."""
    if value is None:
        return None
    version = value.strip('"')
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses
    if not (version.isascii() and version.isdigit() and len(version) <= 18):
        raise ValidationError("If-Match must be a version number", field="If-Match")
    return int(version)


IfMatch = Annotated[int | None, Depends(if_match)]


def page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    """The page envelope every list answers with (see :class:`deployments.schemas.Page`)."""
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if offset + limit < total else None,
    }
