"""The event bus port (see :mod:`linqra.events.base`) and its adapters, opened by URL."""

from __future__ import annotations

from linqra.events.base import MAX_EVENT_BYTES, Delivery, Event, EventBus, Subscription
from linqra.events.dead_letters import DeadLetters, GuardedConsumer, RedeliveryPolicy
from linqra.events.idempotency import ProcessedEvents

__all__ = [
    "MAX_EVENT_BYTES",
    "DeadLetters",
    "Delivery",
    "Event",
    "EventBus",
    "GuardedConsumer",
    "ProcessedEvents",
    "RedeliveryPolicy",
    "Subscription",
    "open_event_bus",
]


def open_event_bus(url: str, *, redeliver_after: float = 30.0) -> EventBus:
    """``memory://``, ``redis://host:6379/0`` or ``kafka://host:9092[,host2:9092]``."""
    if url.startswith("memory://"):
        from linqra.events.memory import MemoryEventBus

        return MemoryEventBus(redeliver_after=redeliver_after)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from linqra.events.redis_streams import RedisEventBus

        return RedisEventBus(url, redeliver_after=redeliver_after)
    if url.startswith("kafka://"):
        from linqra.events.kafka import KafkaEventBus

        return KafkaEventBus(url.removeprefix("kafka://"))
    raise ValueError(
        f"unsupported event bus URL {url!r}: memory://, redis://… or kafka://host:port"
    )
