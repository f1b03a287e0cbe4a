"""The event bus port: topics, consumer groups, at-least-once delivery with acknowledgements.

``publish`` appends an event to a topic. A consumer joins a *group*; every group sees every event
of the topic (a new group reads the topic from its start), and the consumers of one group share
them. Events with the same ``key`` reach a group in the order they were published. A delivered
event stays pending until it is acknowledged; if its consumer dies (or closes) before
acknowledging, the event is delivered again to another consumer of the group, and an
acknowledged event never is. Delivery is therefore at least once, and handlers make themselves
idempotent with the event's ``idempotency_key`` (see
:class:`linqra.events.idempotency.ProcessedEvents`).

Adapters: in-process (the embedded default), Redis Streams, Kafka (``aiokafka``), and on a
cluster the in-process bus in a named actor (``actors.events.RayEventBus``, ``ray://``); one
contract suite runs over all four (``tests/contracts/test_event_bus.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from linqra.clock import iso, new_id
from linqra.errors import PayloadTooLarge, ValidationError

__all__ = [
    "MAX_EVENT_BYTES",
    "Delivery",
    "Event",
    "EventBus",
    "Subscription",
    "check_topic",
    "event_from_json",
    "new_event",
]

MAX_EVENT_BYTES = 256 * 1024
_TOPIC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def check_topic(topic: str, field: str = "topic") -> str:
    if not isinstance(topic, str) or not _TOPIC.match(topic):
        raise ValidationError(
            "a topic is 1-200 letters, digits, '.', '_', '-', starting with a letter or digit",
            field=field,
        )
    return topic


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    topic: str
    payload: Mapping[str, Any]
    key: str | None = None
    idempotency_key: str | None = None
    published_at: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "payload": dict(self.payload),
            "key": self.key,
            "idempotency_key": self.idempotency_key,
            "published_at": self.published_at,
            "headers": dict(self.headers),
        }


def new_event(
    topic: str,
    payload: Mapping[str, Any],
    key: str | None = None,
    idempotency_key: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[Event, bytes]:
    """A new event and its JSON encoding, checked: a valid topic, at most MAX_EVENT_BYTES."""
    check_topic(topic)
    event = Event(
        new_id("ev"), topic, dict(payload), key, idempotency_key, iso(), dict(headers or {})
    )
    body = json.dumps(event.to_json(), default=str).encode()
    if len(body) > MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"an event is at most {MAX_EVENT_BYTES} bytes", field="payload")
    return event, body


def event_from_json(topic: str, data: Mapping[str, Any]) -> Event:
    return Event(
        data["id"], topic, data["payload"], data.get("key"), data.get("idempotency_key"),
        data.get("published_at", ""), data.get("headers") or {},
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of an event to a consumer; ``attempt`` counts deliveries of it to the group
    (1 the first time, 2 or more when it is delivered again)."""

    event: Event
    token: Any  # what the adapter needs to acknowledge it
    attempt: int = 1


class Subscription(Protocol):
    async def fetch(self, max_events: int = 100, timeout: float = 1.0) -> list[Delivery]:
        """Up to ``max_events`` deliveries, waiting up to ``timeout`` seconds for the first:
        returns as soon as there is one, and ``[]`` when none came."""

    async def ack(self, delivery: Delivery) -> None:
        """Done with it: it will not be delivered to this group again."""

    async def close(self) -> None:
        """Leave the group; what was fetched and not acknowledged goes to the others."""


class EventBus(Protocol):
    name: str

    async def publish(
        self,
        topic: str,
        payload: Mapping[str, Any],
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Event:
        """Append an event; returns it with its id. Payload, key, idempotency key and headers
        reach consumers as published. A bad topic is a :class:`ValidationError` on ``topic``;
        an event over :data:`MAX_EVENT_BYTES` encoded is :class:`PayloadTooLarge`."""

    async def subscribe(self, topic: str, group: str, consumer: str) -> Subscription:
        """Join ``group`` on ``topic`` as ``consumer``; a new group reads the topic from its start.
        A subscription receives only its topic's events."""

    async def close(self) -> None: ...
