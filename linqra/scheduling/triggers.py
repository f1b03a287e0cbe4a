"""Event triggers and webhooks.

A task's ``EVENT_DRIVEN`` trigger (``topic`` and an optional ``filter`` of payload fields that must
equal given values) is kept as an ``event_triggers`` document. Events are published per team:
team ``acme``'s topic ``orders`` is the bus topic ``linqra.acme.orders``, and the event says its
team in a header, so one team's events never start another team's tasks. Each matching trigger
creates a task execution whose input is the event payload and whose idempotency key is
``event:<trigger>:<event idempotency key or id>``: a redelivered event runs nothing twice.

Webhooks: ``POST /v1/hooks`` makes a hook for a topic and returns its secret once; a caller
signs the raw body with it (``X-Linqra-Signature: sha256=<hex HMAC-SHA256>``) and posts to
``/v1/hooks/{id}``; a valid call is published as an event on the hook's topic, a missing or wrong
signature is refused with 401, counted, and runs nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from linqra.agents.service import AgentService
from linqra.clock import iso, new_id
from linqra.errors import NotFound, PayloadTooLarge, Unauthenticated, ValidationError
from linqra.events.base import MAX_EVENT_BYTES, Event, EventBus, check_topic
from linqra.scheduling.book import EVENT_TRIGGERS
from linqra.store import DocumentStore

__all__ = ["EventRouter", "HookService", "publish_team_event", "team_topic"]

HOOKS = "hooks"
HOOK_INDEX = "hook_index"
SYSTEM_TEAM = "_system"
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
                await self.dispatch(team_id, task["agent_id"], tx["id"], int(task["priority"]))
                started += 1
        return started


class HookService:
    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    async def create(self, team_id: str, topic: str, description: str = "") -> dict[str, Any]:
        check_topic(topic)
        hook_id = new_id("hk")
        secret = secrets.token_urlsafe(32)
        doc = {
            "id": hook_id, "topic": topic, "description": description[:500], "secret": secret,
            "created_at": iso(), "accepted": 0, "rejected": 0,
        }  # fmt: skip
        await self.store.insert(HOOKS, team_id, doc)
        await self.store.insert(HOOK_INDEX, SYSTEM_TEAM, {"id": hook_id, "hook_team": team_id})
        return doc  # the only answer that shows the secret

    async def list(self, team_id: str) -> list[dict[str, Any]]:
        docs = await self.store.find(HOOKS, team_id, limit=500)
        return [{k: v for k, v in d.items() if k != "secret"} for d in docs]

    async def delete(self, team_id: str, hook_id: str) -> None:
        if not await self.store.delete(HOOKS, team_id, hook_id):
            raise NotFound(f"no hook {hook_id!r}", field="hook_id")
        await self.store.delete(HOOK_INDEX, SYSTEM_TEAM, hook_id)

    async def verify(
        self, hook_id: str, body: bytes, signature: str | None
    ) -> tuple[str, dict[str, Any]]:
        """``(team, hook)`` for a correctly signed call; 401 (and a count) otherwise. The call
        is counted as accepted by :meth:`accepted`, once its event is published."""
        index = await self.store.get(HOOK_INDEX, SYSTEM_TEAM, hook_id)
        hook = await self.store.get(HOOKS, index["hook_team"], hook_id) if index else None
        if index is None or hook is None:
            raise NotFound(f"no hook {hook_id!r}", field="hook_id")
        team_id = index["hook_team"]
        expected = "sha256=" + hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
        given = (signature or "").strip()
        # compare_digest refuses non-ASCII text (TypeError): such a signature is simply wrong
        if not given.isascii() or not hmac.compare_digest(given, expected):
            await self.store.update(
                HOOKS,
                team_id,
                hook_id,
                {"rejected": hook["rejected"] + 1, "last_rejected_at": iso()},
            )
            raise Unauthenticated(
                "missing or wrong X-Linqra-Signature (sha256=<hex HMAC-SHA256 of the raw body>)",
                field="X-Linqra-Signature",
            )
        return team_id, hook

    async def accepted(self, team_id: str, hook: Mapping[str, Any]) -> None:
        """Count a verified call whose event was published (a refused one writes nothing)."""
        await self.store.update(
            HOOKS,
            team_id,
            hook["id"],
            {"accepted": hook["accepted"] + 1, "last_accepted_at": iso()},
        )
