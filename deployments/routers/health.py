"""``GET /healthz`` and ``GET /readyz``: whether this replica can serve — its store answers and
runs can start.

``/readyz`` checks afresh at every call (a store round trip and a call to the runner actor).
``/healthz`` answers from the last check when it is at most :data:`HEALTH_CACHE_SECONDS` old —
one probe refreshes it while the others wait for that one — so a load balancer probing every
replica many times a second costs each replica one store round trip and one runner call a
second, not one per probe (issue 15: ``/healthz`` held 148 req/s, each probe an actor call).
"""

import asyncio
import math
import time
from typing import Any

from fastapi import APIRouter, Request, Response

from deployments.auth import PUBLIC
from deployments.deps import SystemDep
from deployments.schemas import Health, RecordRoute
from linqra import __version__
from linqra.system import System

__all__ = ["HEALTH_CACHE_SECONDS", "router"]

CHECK_SECONDS = 5.0
"""How long each probe may take before it counts as failed."""
RETRY_AFTER_SECONDS = 5
HEALTH_CACHE_SECONDS = 1.0
"""How old a check ``/healthz`` may answer from."""

router = APIRouter(tags=["health"], route_class=RecordRoute)
ANSWERS: dict[int | str, dict[str, Any]] = {
    503: {"model": Health, "description": "the store or the runner does not answer"}
}


class HealthChecks:
    """The checks of one replica, and the last result for ``/healthz`` to answer from."""

    def __init__(self, max_age: float = HEALTH_CACHE_SECONDS) -> None:
        self.max_age = max_age
        self._checks: dict[str, str] | None = None
        self._at = -math.inf
        self._lock = asyncio.Lock()

    def _recent(self) -> dict[str, str] | None:
        fresh = time.monotonic() - self._at < self.max_age
        return self._checks if fresh else None

    async def recent(self, system: System) -> dict[str, str]:
        """A check at most ``max_age`` old (made now by one caller when there is none)."""
        if (known := self._recent()) is not None:
            return known
        async with self._lock:
            if (known := self._recent()) is not None:  # another probe just made it
                return known
            return await self.now(system)

    async def now(self, system: System) -> dict[str, str]:
        """``store`` (a read and write round trip) and ``runner`` (runs can start now)."""
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
        self._checks, self._at = checks, time.monotonic()
        return checks


def _checks_of(request: Request) -> HealthChecks:
    state = request.app.state
    if getattr(state, "health_checks", None) is None:
        state.health_checks = HealthChecks()
    checks: HealthChecks = state.health_checks
    return checks


def _answer(checks: dict[str, str], response: Response) -> dict[str, Any]:
    healthy = all(v == "ok" for v in checks.values())
    if not healthy:
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return {"status": "ok" if healthy else "degraded", "version": __version__, "checks": checks}


@router.get("/healthz", dependencies=[PUBLIC], response_model=Health, responses=ANSWERS)
async def healthz(system: SystemDep, request: Request, response: Response) -> dict[str, Any]:
    """``{status, version, checks}``: ``store`` and ``runner`` as checked at most a second ago
    (probes share one check); 503 with ``Retry-After`` when either fails."""
    return _answer(await _checks_of(request).recent(system), response)


@router.get("/readyz", dependencies=[PUBLIC], response_model=Health, responses=ANSWERS)
async def readyz(system: SystemDep, request: Request, response: Response) -> dict[str, Any]:
    """As ``/healthz``, checked now: a store round trip and a call to the runner each time."""
    return _answer(await _checks_of(request).now(system), response)
