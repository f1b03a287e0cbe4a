"""The embedded event bus on a cluster (``agents.events_url = ray://``): the in-process bus living
in one named actor, ``linqra-events``, reached by every process through Ray.

It has the in-process bus's semantics (groups, acknowledgements, redelivery of what a consumer
did not acknowledge) but not its durability: the actor's memory is the log, so a restart of the
actor loses undelivered events. Production configures Redis Streams or Kafka
(``agents.events_url``), which this module hands through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.handles import EVENTS, named_actor
from linqra.config import Settings
from linqra.events import EventBus, open_event_bus
from linqra.events.base import Delivery, Event
from linqra.events.memory import MemoryEventBus

__all__ = ["EVENTS_NAME", "open_bus"]

EVENTS_NAME = EVENTS


class EventBusActor:
    def __init__(self, redeliver_after: float) -> None:
        self.bus = MemoryEventBus(redeliver_after=redeliver_after)
        self.subscriptions: dict[str, Any] = {}

    async def publish(self, topic: str, payload: dict[str, Any], key: str | None,
                      idempotency_key: str | None, headers: dict[str, str] | None) -> Event:  # fmt: skip
        return await self.bus.publish(
            topic, payload, key=key, idempotency_key=idempotency_key, headers=headers
        )

    async def subscribe(self, topic: str, group: str, consumer: str) -> str:
        sub_id = f"{topic}|{group}|{consumer}"
        self.subscriptions[sub_id] = await self.bus.subscribe(topic, group, consumer)
        return sub_id

    async def fetch(self, sub_id: str, max_events: int, timeout: float) -> list[Delivery]:
        result: list[Delivery] = await self.subscriptions[sub_id].fetch(max_events, timeout)
        return result

    async def ack(self, sub_id: str, delivery: Delivery) -> None:
        await self.subscriptions[sub_id].ack(delivery)

    async def close_subscription(self, sub_id: str) -> None:
        sub = self.subscriptions.pop(sub_id, None)
        if sub is not None:
            await sub.close()


class _RaySubscription:
    def __init__(self, actor: Any, sub_id: str) -> None:
        self.actor, self.sub_id = actor, sub_id

    async def fetch(self, max_events: int = 100, timeout: float = 1.0) -> list[Delivery]:
        result: list[Delivery] = await self.actor.fetch.remote(self.sub_id, max_events, timeout)
        return result

    async def ack(self, delivery: Delivery) -> None:
        await self.actor.ack.remote(self.sub_id, delivery)

    async def close(self) -> None:
        await self.actor.close_subscription.remote(self.sub_id)


class RayEventBus:
    name = "ray"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._actor: Any = None

    @property
    def actor(self) -> Any:
        """The bus actor, found (or created, the first time on a cluster) on first use."""
        if self._actor is None:
            self._actor = named_actor(
                EventBusActor,
                self.settings,
                EVENTS,
                self.settings.agents.stale_after_seconds,
                max_concurrency=1000,
            )
        return self._actor

    async def publish(self, topic: str, payload: Mapping[str, Any], *, key: str | None = None,
                      idempotency_key: str | None = None, headers: Mapping[str, str] | None = None) -> Event:  # fmt: skip
        event: Event = await self.actor.publish.remote(  # type: ignore[attr-defined]
            topic, dict(payload), key, idempotency_key, dict(headers or {})
        )
        return event

    async def subscribe(self, topic: str, group: str, consumer: str) -> _RaySubscription:
        sub_id = await self.actor.subscribe.remote(topic, group, consumer)  # type: ignore[attr-defined]
        return _RaySubscription(self.actor, sub_id)

    async def close(self) -> None:
        return None


def open_bus(settings: Settings) -> EventBus:
    """The configured event bus; ``ray://`` is the shared in-cluster default."""
    url = settings.agents.events_url
    if url.startswith("ray://"):
        return RayEventBus(settings)
    return open_event_bus(url, redeliver_after=settings.agents.stale_after_seconds)
