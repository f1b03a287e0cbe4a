"""Workers for queued ``async: true`` steps: ``linqra-async-N`` async actors (``num_cpus=0``),
one consumer each in the ``async-step-workers`` group of the event bus. A message is
acknowledged after the step's outcome is recorded; one a worker took and never acknowledged
(it died) is delivered again to another worker (see :mod:`linqra.workflows.async_steps`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from actors._context import process_system
from linqra.config import Settings
from linqra.metrics import record_lag
from linqra.workflows.async_steps import ASYNC_GROUP, ASYNC_TOPIC, process_async_step

__all__ = ["AsyncStepWorker"]

log = logging.getLogger(__name__)


class AsyncStepWorker:
    def __init__(self, settings_json: str, name: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self.name = name
        self.done = 0
        self._task = asyncio.get_running_loop().create_task(self._consume())

    async def _consume(self) -> None:
        system = await process_system(self.settings)
        repo = system.workflows.executions
        ex = self.settings.execution  # a step's worker beats like an execution's runner
        subscription = await system.bus().subscribe(ASYNC_TOPIC, ASYNC_GROUP, self.name)
        limit = asyncio.Semaphore(64)

        async def handle(delivery: Any) -> None:
            async with limit:
                try:
                    status = await process_async_step(
                        delivery.event.payload, repo, system.registry, system.ctx,
                        worker=self.name, heartbeat_seconds=ex.heartbeat_seconds,
                        stale_after_seconds=ex.stale_after_seconds,
                    )  # fmt: skip
                    if status != "busy":  # busy: another worker has it; it comes back
                        await subscription.ack(delivery)
                        self.done += 1
                        record_lag(system.metrics, ASYNC_GROUP, delivery.event.published_at)
                except Exception:  # not acknowledged: delivered again
                    log.warning("async step failed to process", exc_info=True)

        while True:
            try:
                for delivery in await subscription.fetch(64, 1.0):
                    asyncio.get_running_loop().create_task(handle(delivery))
            except Exception:
                log.warning("async step queue unavailable", exc_info=True)
                await asyncio.sleep(1.0)

    async def ping(self) -> dict[str, Any]:
        return {"name": self.name, "done": self.done, "running": not self._task.done()}
