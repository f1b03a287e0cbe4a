"""The in-process event bus (the embedded default): topics as lists, groups as offsets.

An event fetched and not acknowledged is delivered again when its consumer closes, or when it
has been pending longer than ``redeliver_after`` seconds (a consumer that hangs).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from linqra.events.base import Delivery, Event, check_topic, new_event

__all__ = ["MemoryEventBus"]


@dataclass
class _Pending:
    consumer: str
    since: float
    attempts: int


@dataclass
class _Group:
    offset: int = 0
    pending: dict[int, _Pending] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)


class MemoryEventBus:
    name = "memory"

    def __init__(self, redeliver_after: float = 30.0) -> None:
        self.redeliver_after = redeliver_after
        self._topics: dict[str, list[Event]] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._changed = asyncio.Condition()

    async def publish(
        self,
        topic: str,
        payload: Mapping[str, Any],
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Event:
        event, _ = new_event(topic, payload, key, idempotency_key, headers)
        async with self._changed:
            self._topics.setdefault(topic, []).append(event)
            self._changed.notify_all()
        return event

    async def subscribe(self, topic: str, group: str, consumer: str) -> _MemorySubscription:
        check_topic(topic)
        state = self._groups.setdefault((topic, group), _Group())
        state.closed.discard(consumer)
        return _MemorySubscription(self, topic, state, consumer)

    async def close(self) -> None:
        return None


class _MemorySubscription:
    def __init__(self, bus: MemoryEventBus, topic: str, group: _Group, consumer: str) -> None:
        self.bus, self.topic, self.group, self.consumer = bus, topic, group, consumer

    def _take(self, max_events: int) -> list[Delivery]:
        events = self.bus._topics.get(self.topic, [])
        now = time.monotonic()
        out: list[Delivery] = []
        for index, pending in sorted(self.group.pending.items()):  # redeliveries first
            if len(out) >= max_events:
                return out
            dead = pending.consumer in self.group.closed
            if dead or now - pending.since > self.bus.redeliver_after:
                pending.consumer, pending.since = self.consumer, now
                pending.attempts += 1
                out.append(Delivery(events[index], index, pending.attempts))
        while len(out) < max_events and self.group.offset < len(events):
            index = self.group.offset
            self.group.offset += 1
            self.group.pending[index] = _Pending(self.consumer, now, 1)
            out.append(Delivery(events[index], index, 1))
        return out

    async def fetch(self, max_events: int = 100, timeout: float = 1.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        async with self.bus._changed:
            while True:
                got = self._take(max_events)
                left = deadline - time.monotonic()
                if got or left <= 0:
                    return got
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.bus._changed.wait(), min(left, 0.25))

    async def ack(self, delivery: Delivery) -> None:
        self.group.pending.pop(int(delivery.token), None)

    async def close(self) -> None:
        self.group.closed.add(self.consumer)  # its pending events go to the others
        async with self.bus._changed:
            self.bus._changed.notify_all()
