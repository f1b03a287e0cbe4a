"""What fires a task: its schedules (CRON triggers) and event triggers, kept in step with it.

The only writer of the ``schedules`` and ``event_triggers`` collections. The agent service
tells it when a task changes or goes (:class:`linqra.agents.service.TaskTriggers`); the
scheduler and the event router read what it wrote. When a schedule is made or resumed it calls
``on_schedule`` (the system sets the launcher's ``schedules_changed``), so the scheduler, which
sleeps until its next known fire, looks again at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from linqra.clock import iso, utcnow
from linqra.scheduling.cron import CronExpression, zone
from linqra.store import DocumentStore, IndexSpec

__all__ = ["EVENT_TRIGGERS", "SCHEDULES", "TRIGGER_INDEXES", "TriggerBook"]

SCHEDULES = "schedules"
EVENT_TRIGGERS = "event_triggers"
TRIGGER_INDEXES = [
    IndexSpec(EVENT_TRIGGERS, ("topic", "active")),
    IndexSpec(SCHEDULES, ("task_id",)),
    IndexSpec(SCHEDULES, ("active", "next_fire_at")),
]


class TriggerBook:
    def __init__(self, store: DocumentStore, on_schedule: Callable[[], None] | None = None) -> None:
        self.store = store
        self.on_schedule = on_schedule
        """Called after a schedule is made or resumed (best effort: it must not raise)."""

    async def init(self) -> None:
        await self.store.ensure_indexes(TRIGGER_INDEXES)

    def validate(self, triggers: list[dict[str, Any]]) -> None:
        for i, trigger in enumerate(triggers):
            if trigger["type"] == "CRON":
                CronExpression(trigger.get("cron") or "", field=f"triggers[{i}].cron")
                zone(trigger["timezone"], field=f"triggers[{i}].timezone")

    async def task_changed(self, team_id: str, task: Mapping[str, Any]) -> dict[str, Any]:
        """One schedule per CRON trigger of the task's current version; active while the task is
        enabled and not paused. A changed trigger starts from now; resuming starts from now (a
        paused period is not caught up); ``schedule_on_startup`` fires once at once."""
        task_id = task["id"]
        now = utcnow()
        active = bool(task["enabled"]) and not task["paused"]
        keep: set[str] = set()
        upcoming_changed = False
        for i, trigger in enumerate(task["triggers"]):
            if trigger["type"] != "CRON":
                continue
            schedule_id = f"{task_id}-{i}"
            keep.add(schedule_id)
            signature = f"{trigger['cron']}|{trigger['timezone']}|{trigger['misfire_policy']}"
            existing = await self.store.get(SCHEDULES, team_id, schedule_id)
            cron = CronExpression(trigger["cron"])
            if existing is None or existing["signature"] != signature:
                first = (
                    now
                    if trigger.get("schedule_on_startup")
                    else cron.next_after(now, zone(trigger["timezone"]))
                )
                doc = {
                    "id": schedule_id, "task_id": task_id, "agent_id": task["agent_id"],
                    "cron": trigger["cron"], "timezone": trigger["timezone"],
                    "misfire_policy": trigger["misfire_policy"], "signature": signature,
                    "next_fire_at": iso(first) if first else None, "last_fire_at": None,
                    "active": active and first is not None, "paused": task["paused"],
                    "misfires": 0, "created_at": iso(),
                }  # fmt: skip
                if existing is not None:
                    await self.store.delete(SCHEDULES, team_id, schedule_id)
                await self.store.insert(SCHEDULES, team_id, doc)
                upcoming_changed = upcoming_changed or doc["active"]
            elif existing["active"] != active:
                changes: dict[str, Any] = {"active": active, "paused": task["paused"]}
                if active:  # resumed: from now on
                    upcoming = cron.next_after(now, zone(trigger["timezone"]))
                    changes["next_fire_at"] = iso(upcoming) if upcoming else None
                    changes["active"] = upcoming is not None
                await self.store.update(SCHEDULES, team_id, schedule_id, changes)
                upcoming_changed = upcoming_changed or changes["active"]
        await self._drop_schedules(team_id, task_id, keep)
        if upcoming_changed and self.on_schedule is not None:
            self.on_schedule()
        return {
            "schedules": await self.store.find(SCHEDULES, team_id, {"task_id": task_id}, limit=100),
            "event_triggers": await self._sync_event_triggers(team_id, task, active),
        }

    async def task_removed(self, team_id: str, task_id: str) -> None:
        await self._drop_schedules(team_id, task_id)
        for doc in await self.store.find(EVENT_TRIGGERS, team_id, {"task_id": task_id}, limit=100):
            await self.store.delete(EVENT_TRIGGERS, team_id, doc["id"])

    async def _drop_schedules(
        self, team_id: str, task_id: str, keep: frozenset[str] | set[str] = frozenset()
    ) -> None:
        for doc in await self.store.find(SCHEDULES, team_id, {"task_id": task_id}, limit=100):
            if doc["id"] not in keep:
                await self.store.delete(SCHEDULES, team_id, doc["id"])

    async def _sync_event_triggers(
        self, team_id: str, task: Mapping[str, Any], active: bool
    ) -> list[dict[str, Any]]:
        wanted = {
            f"{task['id']}-e{i}": trigger
            for i, trigger in enumerate(task["triggers"])
            if trigger["type"] == "EVENT_DRIVEN"
        }
        for doc in await self.store.find(
            EVENT_TRIGGERS, team_id, {"task_id": task["id"]}, limit=100
        ):
            if doc["id"] not in wanted:
                await self.store.delete(EVENT_TRIGGERS, team_id, doc["id"])
        for trigger_id, trigger in wanted.items():
            doc = {
                "id": trigger_id, "task_id": task["id"], "agent_id": task["agent_id"],
                "topic": trigger["topic"], "filter": trigger.get("filter") or {}, "active": active,
            }  # fmt: skip
            if await self.store.get(EVENT_TRIGGERS, team_id, trigger_id) is None:
                await self.store.insert(EVENT_TRIGGERS, team_id, doc)
            else:
                await self.store.update(
                    EVENT_TRIGGERS, team_id, trigger_id, {k: v for k, v in doc.items() if k != "id"}
                )
        return await self.store.find(EVENT_TRIGGERS, team_id, {"task_id": task["id"]}, limit=100)
