"""``linqra-scheduler``: one named, detached, restartable actor per cluster that fires cron
schedules (:class:`linqra.scheduling.scheduler.Scheduler`) and hands each task execution to its
agent's actor. Its state is the ``schedules`` documents, so a restart neither loses nor repeats
a fire (fires are keyed by schedule and scheduled time)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from actors._context import named_actor
from actors.agent import dispatch
from actors.events import open_bus
from linqra.agents.service import EVENT_TRIGGERS
from linqra.config import Settings
from linqra.scheduling.scheduler import Scheduler
from linqra.scheduling.triggers import EventRouter, team_topic
from linqra.system import System

__all__ = ["SCHEDULER_NAME", "SchedulerActor", "get_scheduler"]

SCHEDULER_NAME = "linqra-scheduler"
log = logging.getLogger(__name__)


class SchedulerActor:
    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self._scheduler: Scheduler | None = None
        self.events = 0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _dispatch(self, team_id: str, agent_id: str, tx_id: str, priority: int) -> None:
        await dispatch(self.settings, team_id, agent_id, tx_id, priority)

    async def _run(self) -> None:
        system = await System.open(self.settings, init=False)
        scheduler = Scheduler(system.agents, self.settings.agents, self._dispatch)
        self._scheduler = scheduler
        self._events = asyncio.get_running_loop().create_task(self._event_triggers(system))
        await scheduler.run_forever()

    async def _event_triggers(self, system: System) -> None:
        """One consumer per bus topic that some active EVENT_DRIVEN trigger listens to."""
        bus = open_bus(self.settings)
        router = EventRouter(system.agents, self._dispatch)
        consumers: dict[str, asyncio.Task[None]] = {}
        while True:
            try:
                triggers = await system.store.scan_all_teams(
                    EVENT_TRIGGERS, {"active": True}, limit=10_000
                )
                topics = {team_topic(t["team_id"], t["topic"]) for t in triggers}
                for topic in topics - consumers.keys():
                    consumers[topic] = asyncio.get_running_loop().create_task(
                        self._consume(bus, topic, router)
                    )
                for topic in consumers.keys() - topics:
                    consumers.pop(topic).cancel()
            except Exception:
                log.warning("event trigger refresh failed", exc_info=True)
            await asyncio.sleep(1.0)

    async def _consume(self, bus: Any, topic: str, router: EventRouter) -> None:
        subscription = await bus.subscribe(topic, "linqra-triggers", "scheduler")
        try:
            while True:
                try:
                    for delivery in await subscription.fetch(100, 1.0):
                        self.events += 1
                        await router.handle(delivery.event)  # idempotent: safe to see twice
                        await subscription.ack(delivery)
                except asyncio.CancelledError:
                    raise
                except Exception:  # unacknowledged: it comes back
                    log.warning("event on %s not handled", topic, exc_info=True)
                    await asyncio.sleep(1.0)
        finally:
            await subscription.close()

    async def ping(self) -> dict[str, Any]:
        fired = self._scheduler.fired if self._scheduler is not None else 0
        return {"fired": fired, "events": self.events, "running": not self._task.done()}


def get_scheduler(settings: Settings) -> Any:
    return named_actor(
        SchedulerActor, settings, SCHEDULER_NAME, settings.model_dump_json(), max_task_retries=0
    )
