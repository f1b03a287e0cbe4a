"""``linqra-alerts``: one named, detached, restartable actor per cluster that evaluates every
team's alert rules every ``alerts.interval_seconds`` (:class:`linqra.alerts.AlertEvaluator`) and
sends their notifications. Its state is in the store (rule states, deliveries with their next
attempt), so a restart neither loses a transition nor sends one twice (states move by
compare-and-set, a delivery is claimed before it is sent)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from actors._context import process_system
from linqra.alerts import AlertEvaluator
from linqra.clock import iso
from linqra.config import Settings

__all__ = ["ALERTS", "AlertsActor"]

ALERTS = "linqra-alerts"
log = logging.getLogger(__name__)


class AlertsActor:
    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self._evaluator: AlertEvaluator | None = None
        self._ready = asyncio.Event()
        self._lock = asyncio.Lock()  # one tick at a time: the loop's or one asked for
        self._last: dict[str, Any] = {}
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._evaluator is None:  # the store may be down as the cluster starts
            try:
                self._evaluator = AlertEvaluator.of(await process_system(self.settings))
            except Exception:
                log.warning("the alert evaluator cannot open its system yet", exc_info=True)
                await asyncio.sleep(2.0)
        self._ready.set()
        while True:
            await self.tick()
            await asyncio.sleep(self.settings.alerts.interval_seconds)

    async def tick(self) -> dict[str, Any]:
        """Evaluate now (also what the loop does every interval); what the tick did."""
        await self._ready.wait()
        assert self._evaluator is not None
        try:
            async with self._lock:
                report = await self._evaluator.tick()
        except Exception as exc:
            log.warning("alert evaluation failed", exc_info=True)
            self._last = {"at": iso(), "error": f"{type(exc).__name__}: {exc}"[:500]}
        else:
            self._last = {"at": iso(), **report.__dict__}
        return self._last

    async def ping(self) -> dict[str, Any]:
        ticks = self._evaluator.ticks if self._evaluator is not None else 0
        return {"ticks": ticks, "last": self._last, "running": not self._task.done()}
