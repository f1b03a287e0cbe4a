"""Event triggers and webhooks.

A task's ``EVENT_DRIVEN`` trigger (``topic`` and an optional ``filter`` of payload fields that must
equal given values) is kept as an ``event_triggers`` document. Events are published per team:
team ``acme``'s topic ``orders`` is the bus topic ``linqra.acme.orders``, and the event says its
team in a header, so one team's events never start another team's tasks. Each matching trigger
creates a task execution whose input is the event payload and whose idempotency key is
``event:<trigger>:<event idempotency key or id>``: a redelivered event runs nothing twice.

Webhooks, whose verified calls are published here as events: :mod:`linqra.scheduling.hooks`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from linqra.agents.service import AgentService
from linqra.errors import NotFound, PayloadTooLarge, ValidationError
from linqra.events.base import MAX_EVENT_BYTES, Event, EventBus, check_topic
from linqra.scheduling.book import EVENT_TRIGGERS

__all__ = ["EventRouter", "publish_team_event", "team_topic"]

Dispatch = Callable[[str, str, str, int], Awaitable[Any]]


def team_topic(team_id: str, topic: str) -> str:
    check_topic(topic)
    return f"linqra.{team_id}.{topic}"


async def publish_team_event(
    bus: EventBus,
    team_id: str,
    topic: str,
    payload: Any,
    *,
    idempotency_key: str | None = None,
    source: str = "api",
) -> Event:
    if not isinstance(payload, Mapping):
        raise ValidationError("an event payload is a JSON object", field="payload")
    if len(json.dumps(payload, default=str)) > MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"an event is at most {MAX_EVENT_BYTES} bytes", field="payload")
    return await bus.publish(
        team_topic(team_id, topic),
        payload,
        idempotency_key=idempotency_key,
        headers={"team_id": team_id, "topic": topic, "source": source},
    )


def matches(flt: Mapping[str, Any] | None, payload: Mapping[str, Any]) -> bool:
    """Every key of the filter equals the payload's value (dotted keys reach into objects)."""
    for key, want in (flt or {}).items():
        current: Any = payload
        for part in key.split("."):
            if not isinstance(current, Mapping) or part not in current:
                return False
            current = current[part]
        if current != want:
            return False
    return True


class EventRouter:
    def __init__(self, agents: AgentService, dispatch: Dispatch) -> None:
        self.agents = agents
        self.dispatch = dispatch

    async def handle(self, event: Event) -> int:
        """Start the tasks this event triggers; how many task executions were created."""
        team_id = event.headers.get("team_id")
        topic = event.headers.get("topic")
        if not team_id or not topic:
            return 0
        triggers = await self.agents.store.find(
            EVENT_TRIGGERS, team_id, {"topic": topic, "active": True}, limit=1000
        )
        started = 0
        for trigger in triggers:
            if not matches(trigger.get("filter"), event.payload):
                continue
            try:
                task = await self.agents.get_task(team_id, trigger["task_id"])
            except NotFound:
                continue
            key = f"event:{trigger['id']}:{event.idempotency_key or event.id}"
            info = {
                "type": "EVENT_DRIVEN",
                "topic": topic,
                "event_id": event.id,
                "trigger_id": trigger["id"],
            }
            tx, created = await self.agents.new_task_execution(
                team_id, task, input=dict(event.payload), trigger=info, idempotency_key=key
            )
            if created:
                await self.dispatch(team_id, task.agent_id, tx["id"], task.priority)
                started += 1
        return started
