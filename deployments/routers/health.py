"""``GET /healthz``: whether this replica can serve — its store answers and runs can start."""

import asyncio
from typing import Any

from fastapi import APIRouter, Response

from deployments.auth import PUBLIC
from deployments.deps import SystemDep
from deployments.schemas import Health, RecordRoute
from linqra import __version__

__all__ = ["router"]

CHECK_SECONDS = 5.0
"""How long each probe may take before it counts as failed."""
RETRY_AFTER_SECONDS = 5

router = APIRouter(tags=["health"], route_class=RecordRoute)


@router.get(
    "/healthz",
    dependencies=[PUBLIC],
    response_model=Health,
    responses={503: {"model": Health, "description": "the store or the runner does not answer"}},
)
async def healthz(system: SystemDep, response: Response) -> dict[str, Any]:
    """``{status, version, checks}``: ``store`` (a read and write round trip) and ``runner``
    (runs can start now); 503 with ``Retry-After`` when either fails."""
    checks: dict[str, str] = {}
    try:
        await system.store.check(CHECK_SECONDS)
        checks["store"] = "ok"
    except Exception as exc:
        checks["store"] = f"error: {type(exc).__name__}"
    try:
        await asyncio.wait_for(system.launcher.ping(), timeout=CHECK_SECONDS)
        checks["runner"] = "ok"
    except Exception as exc:
        checks["runner"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    if not healthy:
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return {"status": "ok" if healthy else "degraded", "version": __version__, "checks": checks}
