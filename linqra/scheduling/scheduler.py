"""Cron schedules of tasks, and the firing loop the scheduler actor runs.

One ``schedules`` document per CRON trigger of a task (kept in step with the task by
:meth:`linqra.agents.service.AgentService`), holding the next and last fire times in UTC. A fire
creates a task execution whose idempotency key is ``cron:<schedule>:<scheduled time>`` and then
advances ``next_fire_at`` by compare-and-set, so a scheduler that dies between the two, restarts,
or runs twice never doubles a fire, and one that was down finds the fire still due.

The loop sleeps until the earliest active schedule's fire, at most :data:`WATCH_SECONDS`, so an
idle cluster's scheduler reads the store twice a second (a busy one, twice a fire time).
Polling every :data:`POLL_SECONDS`, as it did, cost 22-30 ms of CPU and 48 cross-team queries a
second (each to every MongoDB shard) with nothing due; about 1 ms and 2 now (in process, SQLite:
``python -m benchmarks.agents idle``). A schedule saved by the API is seen at once: the agent
service's trigger book wakes the loop (:meth:`Scheduler.wake`, through the launcher); one saved
another way is seen within :data:`WATCH_SECONDS`.

Misfires (a fire found more than ``agents.misfire_threshold_seconds`` late, e.g. after the
scheduler was down): ``FIRE_ONCE_NOW`` fires once now and continues from now; ``SKIP`` fires
nothing and continues from now — as Quartz's policies of the same names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from linqra.agents.service import AgentService
from linqra.clock import iso
from linqra.config import AgentSettings
from linqra.errors import NotFound
from linqra.metrics import NOOP, Metrics
from linqra.metrics.catalogue import SCHEDULE_FIRES, SCHEDULE_LATENESS, SCHEDULE_MISFIRES
from linqra.scheduling.book import SCHEDULES
from linqra.scheduling.cron import CronExpression, zone

__all__ = ["BATCH", "POLL_SECONDS", "WATCH_SECONDS", "Dispatch", "Scheduler", "parse_instant"]

POLL_SECONDS = 0.02
"""The shortest pause between two looks for due fires (one is due already, or its fire failed)."""
WATCH_SECONDS = 1.0
"""The longest: how late the loop sees a schedule saved without waking it."""
MARGIN_SECONDS = 0.002
"""Slept beyond a due time, so that the loop's clock does not wake it just before."""
BATCH = 500
"""Due schedules read at a time."""

log = logging.getLogger(__name__)
Dispatch = Callable[[str, str, str, int], Awaitable[Any]]  # team, agent, task execution, priority


def parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Scheduler:
    def __init__(
        self,
        agents: AgentService,
        settings: AgentSettings,
        dispatch: Dispatch,
        *,
        metrics: Metrics = NOOP,
    ) -> None:
        self.agents = agents
        self.metrics = metrics
        self.store = agents.store
        self.settings = settings
        self.dispatch = dispatch
        self._crons: dict[str, CronExpression] = {}
        self._wake = asyncio.Event()
        self.fired = 0

    def _cron(self, text: str) -> CronExpression:
        if text not in self._crons:
            self._crons[text] = CronExpression(text)
        return self._crons[text]

    def wake(self) -> None:
        """Look for due fires now, not at the end of the pause (a schedule was saved)."""
        self._wake.set()

    async def due(self, now: datetime, limit: int = BATCH) -> list[dict[str, Any]]:
        return await self.store.scan_all_teams(
            SCHEDULES, {"active": True, "next_fire_at": {"$lte": iso(now)}}, limit=limit
        )

    async def tick(self, now: datetime | None = None) -> int:
        """Fire every schedule that is due; how many task executions were created."""
        now = now or datetime.now(UTC)
        fired = 0
        while True:
            batch = await self.due(now)
            results = await asyncio.gather(
                *(self.fire(s, now) for s in batch), return_exceptions=True
            )
            for schedule, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("schedule %s failed to fire: %s", schedule["id"], result)
                elif result:
                    fired += 1
            if len(batch) < BATCH:
                return fired

    async def pause(self, now: datetime | None = None) -> float:
        """Seconds to sleep: until the earliest active schedule's fire, at most
        :data:`WATCH_SECONDS`; :data:`POLL_SECONDS` when one is due already (it became due
        after the tick read, or its fire failed and is tried again). One document read, by
        the index on ``(active, next_fire_at)``."""
        earliest = await self.store.scan_all_teams(
            SCHEDULES, {"active": True}, sort=[("next_fire_at", 1)], limit=1
        )
        if not earliest:
            return WATCH_SECONDS
        now = now or datetime.now(UTC)  # after the read: its time is not slept again
        until = (parse_instant(earliest[0]["next_fire_at"]) - now).total_seconds()
        if until <= 0:
            return POLL_SECONDS
        return min(until + MARGIN_SECONDS, WATCH_SECONDS)

    async def fire(self, schedule: dict[str, Any], now: datetime) -> bool:
        team_id = schedule["team_id"]
        due_at = parse_instant(schedule["next_fire_at"])
        cron, tz = self._cron(schedule["cron"]), zone(schedule["timezone"])
        late = (now - due_at).total_seconds()
        misfire = late > self.settings.misfire_threshold_seconds
        next_at = cron.next_after(now if misfire else due_at, tz)
        created = False
        if not misfire or schedule["misfire_policy"] == "FIRE_ONCE_NOW":
            created = await self._start(team_id, schedule, due_at, now, misfire)
        advanced = await self.store.update(
            SCHEDULES, team_id, schedule["id"],
            {"next_fire_at": iso(next_at) if next_at else None, "active": next_at is not None,
             "last_fire_at": iso(due_at), "last_fired_late_ms": round(late * 1000, 3),
             "misfires": schedule.get("misfires", 0) + int(misfire)},
            where={"next_fire_at": schedule["next_fire_at"]},
        )  # fmt: skip
        if advanced:  # this scheduler handled the fire (another one that lost the race did not)
            self.metrics.observe(SCHEDULE_LATENESS, max(late, 0.0))
            if misfire:
                self.metrics.add(SCHEDULE_MISFIRES, policy=schedule["misfire_policy"])
            self.metrics.add(SCHEDULE_FIRES, outcome="started" if created else "skipped")
        return created and advanced

    async def _start(
        self, team_id: str, schedule: dict[str, Any], due_at: datetime, now: datetime, misfire: bool
    ) -> bool:
        try:
            task = await self.agents.get_task(team_id, schedule["task_id"])
            agent = await self.agents.get_agent(team_id, task.agent_id)
        except NotFound:  # deleted meanwhile
            return False
        if not (task.enabled and agent.enabled) or task.paused:
            return False
        trigger = {
            "type": "CRON",
            "schedule_id": schedule["id"],
            "scheduled_at": iso(due_at),
            "fired_at": iso(now),
            "misfire": misfire,
        }
        tx, created = await self.agents.new_task_execution(
            team_id, task, trigger=trigger, idempotency_key=f"cron:{schedule['id']}:{iso(due_at)}"
        )
        if created:
            await self.dispatch(team_id, task.agent_id, tx["id"], task.priority)
        return created

    async def run_forever(self) -> None:
        """Tick, then sleep for :meth:`pause` or until :meth:`wake`; ``fired`` counts the task
        executions created."""
        while True:
            self._wake.clear()  # a wake during the tick below is kept: no pause after it
            pause = WATCH_SECONDS  # a failed look (the store is down) is tried again then
            try:
                self.fired += await self.tick()
                pause = await self.pause()
            except Exception:
                log.warning("scheduler tick failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
