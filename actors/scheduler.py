"""``linqra-scheduler``: one named, detached, restartable actor per cluster that fires cron
schedules (:class:`linqra.scheduling.scheduler.Scheduler`) and hands each task execution to its
agent's actor. Its state is the ``schedules`` documents, so a restart neither loses nor repeats
a fire (fires are keyed by schedule and scheduled time)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from actors._context import process_system
from linqra.config import Settings
from linqra.events import DeadLetters, GuardedConsumer, RedeliveryPolicy
from linqra.scheduling.book import EVENT_TRIGGERS
from linqra.scheduling.scheduler import Scheduler
from linqra.scheduling.triggers import EventRouter, team_topic
from linqra.system import System

__all__ = ["TRIGGER_GROUP", "SchedulerActor"]

TRIGGER_GROUP = "linqra-triggers"
log = logging.getLogger(__name__)


class SchedulerActor:
    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self._scheduler: Scheduler | None = None
        self._system: System | None = None
        self.events = 0
        self.wakes = 0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _dispatch(self, team_id: str, agent_id: str, tx_id: str, priority: int) -> None:
        assert self._system is not None
        await self._system.launcher.dispatch_task(team_id, agent_id, tx_id, priority)

    async def _run(self) -> None:
        system = self._system = await process_system(self.settings)
        scheduler = Scheduler(
            system.agents, self.settings.agents, self._dispatch, metrics=system.metrics
        )
        self._scheduler = scheduler
        self._events = asyncio.get_running_loop().create_task(self._event_triggers(system))
        await scheduler.run_forever()

    async def _event_triggers(self, system: System) -> None:
        """One consumer per bus topic that some active EVENT_DRIVEN trigger listens to (a
        consumer that stopped, e.g. it could not join while the bus was down, is started again)."""
        bus = system.bus()
        router = EventRouter(system.agents, self._dispatch)
        dead_letters = DeadLetters(system.store)
        consumers: dict[str, asyncio.Task[None]] = {}
        indexed = False
        while True:
            try:
                if not indexed:
                    await dead_letters.init()
                    indexed = True
                triggers = await system.store.scan_all_teams(
                    EVENT_TRIGGERS, {"active": True}, limit=10_000
                )
                topics = {team_topic(t["team_id"], t["topic"]) for t in triggers}
                for topic in topics:
                    if topic not in consumers or consumers[topic].done():
                        consumers[topic] = asyncio.get_running_loop().create_task(
                            self._consume(bus, topic, router, dead_letters)
                        )
                for topic in consumers.keys() - topics:
                    consumers.pop(topic).cancel()
            except Exception:
                log.warning("event trigger refresh failed", exc_info=True)
            await asyncio.sleep(1.0)

    async def _consume(
        self, bus: Any, topic: str, router: EventRouter, dead_letters: DeadLetters
    ) -> None:
        """Handle the topic's events; one that keeps failing is retried with backoff and, after
        ``agents.max_event_deliveries`` attempts, becomes a dead letter of its team."""
        subscription = await bus.subscribe(topic, TRIGGER_GROUP, "scheduler")
        agents = self.settings.agents
        policy = RedeliveryPolicy(agents.max_event_deliveries, agents.event_retry_seconds)
        consumer = GuardedConsumer(
            subscription, router.handle, dead_letters, group=TRIGGER_GROUP, policy=policy,
            metrics=self._system.metrics if self._system is not None else None,
        )  # fmt: skip

        def count(polled: int) -> None:
            self.events += polled

        try:
            await consumer.run_forever(100, 1.0, on_poll=count)
        finally:
            await subscription.close()

    async def wake(self) -> None:
        """A schedule was saved (``RayLauncher.schedules_changed``): look for due fires now."""
        self.wakes += 1
        if self._scheduler is not None:
            self._scheduler.wake()

    async def ping(self) -> dict[str, Any]:
        fired = self._scheduler.fired if self._scheduler is not None else 0
        running = not self._task.done()
        return {"fired": fired, "events": self.events, "wakes": self.wakes, "running": running}
