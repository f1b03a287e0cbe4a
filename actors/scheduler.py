"""``linqra-scheduler``: one named, detached, restartable actor per cluster that fires cron
schedules (:class:`linqra.scheduling.scheduler.Scheduler`) and hands each task execution to its
agent's actor. Its state is the ``schedules`` documents, so a restart neither loses nor repeats
a fire (fires are keyed by schedule and scheduled time)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray

from actors.agent import dispatch
from linqra.config import Settings
from linqra.scheduling.scheduler import Scheduler
from linqra.system import System

__all__ = ["SCHEDULER_NAME", "SchedulerActor", "get_scheduler"]

SCHEDULER_NAME = "linqra-scheduler"
log = logging.getLogger(__name__)


class SchedulerActor:
    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self.fired = 0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _dispatch(self, team_id: str, agent_id: str, tx_id: str, priority: int) -> None:
        await dispatch(self.settings, team_id, agent_id, tx_id, priority)

    async def _run(self) -> None:
        system = await System.open(self.settings, init=False)
        scheduler = Scheduler(system.agents, self.settings.agents, self._dispatch)
        while True:
            try:
                self.fired += await scheduler.tick()
            except Exception:
                log.warning("scheduler tick failed", exc_info=True)
            await asyncio.sleep(0.05)

    async def ping(self) -> dict[str, Any]:
        return {"fired": self.fired, "running": not self._task.done()}


def get_scheduler(settings: Settings) -> Any:
    return (
        ray.remote(SchedulerActor)
        .options(  # type: ignore[attr-defined]
            name=SCHEDULER_NAME,
            namespace=settings.ray.namespace,
            get_if_exists=True,
            lifetime="detached",
            num_cpus=0,
            max_restarts=-1,
            max_task_retries=0,
        )
        .remote(settings.model_dump_json())
    )
