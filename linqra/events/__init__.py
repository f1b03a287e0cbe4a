"""The event bus port (see :mod:`linqra.events.base`) and its adapters, opened by URL."""

from __future__ import annotations

from linqra._config_topology import ConnectionSettings
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


def open_event_bus(
    url: str, *, redeliver_after: float = 30.0, connections: ConnectionSettings | None = None
) -> EventBus:
    """``memory://``, ``redis://host:6379/0`` or ``kafka://host:9092[,host2:9092]``, with the
    clients' pool size and options of ``connections`` (default: the settings' defaults)."""
    connections = connections or ConnectionSettings()
    if url.startswith("memory://"):
        from linqra.events.memory import MemoryEventBus

        return MemoryEventBus(redeliver_after=redeliver_after)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from linqra.events.redis_streams import RedisEventBus

        return RedisEventBus(
            url,
            redeliver_after=redeliver_after,
            max_connections=connections.redis.max_connections,
        )
    if url.startswith("kafka://"):
        from linqra.events.kafka import KafkaEventBus

        kafka = connections.kafka
        return KafkaEventBus(
            url.removeprefix("kafka://"),
            session_timeout_ms=kafka.session_timeout_ms,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            linger_ms=kafka.linger_ms,
            max_batch_bytes=kafka.max_batch_bytes,
        )
    raise ValueError(
        f"unsupported event bus URL {url!r}: memory://, redis://… or kafka://host:port"
    )
