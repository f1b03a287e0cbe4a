"""``GET /healthz`` and ``GET /readyz``: whether this replica can serve — its store answers and
runs can start.

``/readyz`` checks afresh at every call (a store round trip and a call to the runner actor).
``/healthz`` answers from the last check when it is at most :data:`HEALTH_CACHE_SECONDS` old —
one probe refreshes it while the others wait for that one — so a load balancer probing every
replica many times a second costs each replica one store round trip and one runner call a
second, not one per probe (issue 15: ``/healthz`` held 148 req/s, each probe an actor call).

Healthy means ready: on Ray the gateway gives its checks a :class:`Readiness`
(:class:`actors.cluster.Readiness`), and ``/healthz`` answers 200 for the first time once its
warm-up has finished — every actor a first execution needs answers, their systems are open, the
worker processes for CPU steps have started — so the first execution after a start is as fast
as the next. A replica waits for its warm-up (:meth:`HealthChecks.ready`) before Serve sends it
traffic, so a replica added under load is ready when its first probe arrives. Until then the
``runner`` check says ``starting`` (503); after that ``/healthz``
makes no call for it again, while ``/readyz`` asks every actor afresh.
"""

import asyncio
import logging
import math
import time
from typing import Any, Protocol

from fastapi import APIRouter, Request, Response

from deployments.auth import PUBLIC
from deployments.deps import SystemDep
from deployments.schemas import Health, RecordRoute
from linqra import __version__
from linqra.system import System

__all__ = ["HEALTH_CACHE_SECONDS", "REPLICA_WARM_UP_SECONDS", "HealthChecks", "Readiness", "router"]

log = logging.getLogger(__name__)

CHECK_SECONDS = 5.0
"""How long each probe may take before it counts as failed."""
RETRY_AFTER_SECONDS = 5
HEALTH_CACHE_SECONDS = 1.0
"""How old a check ``/healthz`` may answer from."""
WARM_UP_WAIT_SECONDS = 2.0
"""How long a probe waits for the warm-up to finish before it answers ``starting``."""
REPLICA_WARM_UP_SECONDS = 60.0
"""How long a new gateway replica waits for its warm-up before it takes traffic anyway (its
probes then answer ``starting`` and start the warm-up again until it succeeds)."""

router = APIRouter(tags=["health"], route_class=RecordRoute)
ANSWERS: dict[int | str, dict[str, Any]] = {
    503: {"model": Health, "description": "the store or the runner does not answer"}
}


class Readiness(Protocol):
    """What a first execution needs beyond the store and the runner (on Ray: the cluster's
    actors and worker processes)."""

    async def warm_up(self) -> Any:
        """Start everything a first execution needs; return once all of it has answered."""

    async def check(self) -> Any:
        """Everything a first execution needs answers now (starts nothing)."""


class HealthChecks:
    """The checks of one replica, and the last result for ``/healthz`` to answer from."""

    def __init__(
        self, max_age: float = HEALTH_CACHE_SECONDS, readiness: Readiness | None = None
    ) -> None:
        self.max_age = max_age
        self.readiness = readiness
        self.warm = readiness is None
        """Whether the warm-up has finished (once true, it stays so)."""
        self._warming: asyncio.Task[Any] | None = None
        self._checks: dict[str, str] | None = None
        self._at = -math.inf
        self._lock = asyncio.Lock()

    def warm_up(self) -> None:
        """Start the warm-up now (the gateway does as its replica starts) unless it runs or
        has finished; the probes wait for it."""
        if self.warm or self._warming is not None or self.readiness is None:
            return
        self._warming = asyncio.get_running_loop().create_task(self.readiness.warm_up())
        self._warming.add_done_callback(self._warmed)

    async def ready(self, timeout: float = REPLICA_WARM_UP_SECONDS) -> bool:
        """Warm up, again after each failure (an actor restarting), for at most ``timeout``
        seconds: whether the warm-up has finished.

        A gateway replica waits here before it takes traffic, so that a replica Serve adds
        under load does not answer its first probes ``starting`` (503) while the replicas
        beside it answer 200 (the load test of tests/test_load.py met one)."""
        deadline = time.monotonic() + timeout
        pause = 0.1
        while not self.warm and (left := deadline - time.monotonic()) > 0:
            self.warm_up()
            assert self._warming is not None
            try:  # a failure is logged by _warmed, which lets the next call start another
                await asyncio.wait_for(asyncio.shield(self._warming), timeout=left)
            except TimeoutError:
                break
            except Exception:
                await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
                pause = min(pause * 2, 2.0)
        return self.warm

    def _warmed(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or (error := task.exception()) is not None:
            self._warming = None  # the next probe starts it again
            log.info("warm-up failed: %s", "cancelled" if task.cancelled() else repr(error))
        else:
            self.warm = True
        self._at = -math.inf  # the next probe checks afresh instead of answering "starting"

    async def _cluster(self, deep: bool) -> str:
        assert self.readiness is not None
        if self.warm:
            if deep:
                await asyncio.wait_for(self.readiness.check(), timeout=CHECK_SECONDS)
            return "ok"
        self.warm_up()
        assert self._warming is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._warming), timeout=WARM_UP_WAIT_SECONDS)
        except TimeoutError:
            return "starting"
        return "ok"

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
            return await self.now(system, deep=False)

    async def now(self, system: System, *, deep: bool = True) -> dict[str, str]:
        """``store`` (a read and write round trip) and ``runner`` (runs can start now; with a
        :class:`Readiness`, only once its warm-up has finished — ``starting`` while it runs —
        and, when ``deep``, every actor answers again)."""
        checks: dict[str, str] = {}
        try:
            await system.store.check(CHECK_SECONDS)
            checks["store"] = "ok"
        except Exception as exc:
            checks["store"] = f"error: {type(exc).__name__}"
        try:
            await asyncio.wait_for(system.launcher.ping(), timeout=CHECK_SECONDS)
            checks["runner"] = "ok" if self.readiness is None else await self._cluster(deep)
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
    (probes share one check) — on Ray ``runner`` is ``starting`` until the warm-up after a
    start has finished; 503 with ``Retry-After`` when one is not ``ok``."""
    return _answer(await _checks_of(request).recent(system), response)


@router.get("/readyz", dependencies=[PUBLIC], response_model=Health, responses=ANSWERS)
async def readyz(system: SystemDep, request: Request, response: Response) -> dict[str, Any]:
    """As ``/healthz``, checked now: a store round trip, a call to the runner and, on Ray, a
    call to each of the cluster's actors each time."""
    return _answer(await _checks_of(request).now(system), response)
