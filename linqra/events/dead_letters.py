"""Bounded redelivery: an event whose handling keeps failing ends as a team's dead letter.

A consumer hands each delivery to :class:`GuardedConsumer`, which calls the handler and
acknowledges the event when it returns. When the handler raises, the failure is counted in the
document store (``event_attempts``: one record per consumer group and event, in the event's team)
and this consumer handles the event again after ``retry_seconds``, doubling each time — the same
on every bus (in-process, Redis Streams, Kafka, ``ray://``; Kafka never redelivers an
unacknowledged event to a live consumer, so the retry cannot be left to the bus). When the
``max_deliveries``-th attempt fails, or the bus delivers an event for more than the
``max_deliveries``-th time (consumers died while handling it: every bus counts deliveries —
Redis Streams and the in-process bus natively, Kafka in a side topic per group), the event is recorded in ``dead_letters`` and acknowledged, so it is never
delivered again, and the events behind it keep flowing meanwhile.

Counting needs the store: a failure that cannot be recorded (the store is down) is not counted
and the event is simply retried, so an outage never turns good events into dead letters. Counts
survive a consumer's restart (they are in the store, read when a failure is recorded).

A dead letter belongs to the team in the event's ``team_id`` header (events without one go to the
``_system`` team, which no request can name). It keeps the topic, the event id and keys, the
attempts, the last error, the first and last failure times, and the payload as JSON text cut at
:data:`MAX_DEAD_LETTER_PAYLOAD_CHARS` — text, so that any payload can be recorded, also one the
store cannot hold as a JSON value (``NaN``). :class:`DeadLetters` lists, reads, deletes and
replays (publishes again) a team's dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from linqra.clock import iso
from linqra.errors import Conflict, LinqraError, NotFound
from linqra.events.base import Delivery, Event, EventBus, Subscription
from linqra.metrics import NOOP, Metrics, record_lag
from linqra.metrics.catalogue import EVENT_DEAD_LETTERS
from linqra.store import DocumentStore, IndexSpec

__all__ = [
    "DEAD_LETTERS",
    "DEAD_LETTER_INDEXES",
    "EVENT_ATTEMPTS",
    "MAX_DEAD_LETTER_PAYLOAD_CHARS",
    "DeadLetters",
    "GuardedConsumer",
    "RedeliveryPolicy",
    "team_of",
]

DEAD_LETTERS = "dead_letters"
EVENT_ATTEMPTS = "event_attempts"
DEAD_LETTER_INDEXES = [IndexSpec(DEAD_LETTERS, ("dead_at",))]
MAX_DEAD_LETTER_PAYLOAD_CHARS = 64 * 1024
MAX_ERROR_CHARS = 2000
SYSTEM_TEAM = "_system"

log = logging.getLogger(__name__)
Handler = Callable[[Event], Awaitable[Any]]


def team_of(event: Event) -> str:
    return event.headers.get("team_id") or SYSTEM_TEAM


def _record_id(prefix: str, group: str, event_id: str) -> str:
    digest = hashlib.sha256(f"{group}\x00{event_id}".encode()).hexdigest()[:24]
    return f"{prefix}_{digest}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LinqraError):
        text = f"{exc.code}: {exc.message}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_CHARS]


@dataclass(frozen=True, slots=True)
class RedeliveryPolicy:
    """At most ``max_deliveries`` attempts; the n-th retry waits ``retry_seconds * 2**(n-1)``
    (at most ``max_retry_seconds``)."""

    max_deliveries: int = 5
    retry_seconds: float = 1.0
    max_retry_seconds: float = 60.0

    def delay(self, failures: int) -> float:
        return float(min(self.max_retry_seconds, self.retry_seconds * 2 ** max(0, failures - 1)))


class DeadLetters:
    """A team's dead letters (``dead_letters``), and the failure counts that lead there."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    async def init(self) -> None:
        await self.store.ensure_indexes(DEAD_LETTER_INDEXES)

    # -- reading ----------------------------------------------------------------------------
    async def list_dead_letters(
        self, team_id: str, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """The team's dead letters, newest first, and how many there are."""
        items = await self.store.find(
            DEAD_LETTERS, team_id, sort=[("dead_at", -1)], limit=limit, skip=offset
        )
        return items, await self.store.count(DEAD_LETTERS, team_id)

    async def get(self, team_id: str, dead_letter_id: str) -> dict[str, Any]:
        doc = await self.store.get(DEAD_LETTERS, team_id, dead_letter_id)
        if doc is None:
            raise NotFound(f"no dead letter {dead_letter_id!r}", field="dead_letter_id")
        return doc

    async def delete(self, team_id: str, dead_letter_id: str) -> None:
        if not await self.store.delete(DEAD_LETTERS, team_id, dead_letter_id):
            raise NotFound(f"no dead letter {dead_letter_id!r}", field="dead_letter_id")

    async def replay(self, team_id: str, dead_letter_id: str, bus: EventBus) -> Event:
        """Publish the event again on its topic (same headers and idempotency key, so triggers
        that already ran for it do not run twice) and delete the dead letter."""
        doc = await self.get(team_id, dead_letter_id)
        if doc["payload_truncated"]:
            raise Conflict(
                f"the payload was over {MAX_DEAD_LETTER_PAYLOAD_CHARS} characters and was not "
                "kept whole: it cannot be replayed",
                field="payload",
            )
        event = await bus.publish(
            doc["bus_topic"],
            json.loads(doc["payload_json"]),
            key=doc.get("key"),
            idempotency_key=doc.get("idempotency_key") or doc["event_id"],
            headers=doc.get("headers") or {},
        )
        await self.store.delete(DEAD_LETTERS, team_id, dead_letter_id)
        return event

    # -- counting and burying (the consumer's side) -----------------------------------------
    async def record_failure(self, group: str, delivery: Delivery, error: str) -> int:
        """Count one failed attempt; returns the attempts so far (also those of earlier
        consumers, and deliveries the bus counted that never reported back)."""
        event, team_id = delivery.event, team_of(delivery.event)
        key = _record_id("ea", group, event.id)
        now = iso()
        for _ in range(3):  # a racing consumer inserted it first: read again
            doc = await self.store.get(EVENT_ATTEMPTS, team_id, key)
            attempts = max(doc["attempts"] if doc else 0, delivery.attempt - 1) + 1
            if doc is None:
                with contextlib.suppress(Conflict):
                    await self.store.insert(
                        EVENT_ATTEMPTS, team_id,
                        {"id": key, "group": group, "event_id": event.id, "attempts": attempts,
                         "last_error": error, "first_failure_at": now, "last_failure_at": now},
                    )  # fmt: skip
                    return attempts
                continue
            await self.store.update(
                EVENT_ATTEMPTS, team_id, key,
                {"attempts": attempts, "last_error": error, "last_failure_at": now},
            )  # fmt: skip
            return attempts
        raise Conflict("the failure count kept changing", field="event_id")

    async def forget(self, group: str, event: Event) -> None:
        """The event was handled after all: drop its failure count."""
        await self.store.delete(EVENT_ATTEMPTS, team_of(event), _record_id("ea", group, event.id))

    async def bury(
        self, group: str, delivery: Delivery, attempts: int, error: str | None
    ) -> dict[str, Any]:
        """Record the event as a dead letter (again is a no-op) and drop its failure count."""
        event, team_id = delivery.event, team_of(delivery.event)
        key = _record_id("ea", group, event.id)
        counted = await self.store.get(EVENT_ATTEMPTS, team_id, key) or {}
        now = iso()
        text = json.dumps(dict(event.payload), default=str, ensure_ascii=False)
        doc: dict[str, Any] = {
            "id": _record_id("dl", group, event.id),
            "topic": event.headers.get("topic") or event.topic,
            "bus_topic": event.topic,
            "group": group,
            "event_id": event.id,
            "key": event.key,
            "idempotency_key": event.idempotency_key,
            "headers": dict(event.headers),
            "published_at": event.published_at,
            "payload_json": text[:MAX_DEAD_LETTER_PAYLOAD_CHARS],
            "payload_truncated": len(text) > MAX_DEAD_LETTER_PAYLOAD_CHARS,
            "payload_chars": len(text),
            "attempts": attempts,
            "last_error": error
            or counted.get("last_error")
            or f"its consumer stopped {attempts} times before acknowledging it",
            "first_failure_at": counted.get("first_failure_at") or now,
            "last_failure_at": counted.get("last_failure_at") or now,
            "dead_at": now,
        }
        try:
            await self.store.insert(DEAD_LETTERS, team_id, doc)
        except Conflict:  # buried before (its acknowledgement was lost)
            doc = await self.store.get(DEAD_LETTERS, team_id, doc["id"]) or doc
        await self.store.delete(EVENT_ATTEMPTS, team_id, key)
        log.warning(
            "event %s on %s dead-lettered after %d attempts (team %s): %s",
            event.id, event.topic, attempts, team_id, doc["last_error"],
        )  # fmt: skip
        return doc


class GuardedConsumer:
    """Handle a subscription's events with bounded retries and dead letters (see the module).

    ``poll`` is one round (the retries that are due, then one fetch); ``run_forever`` polls until
    cancelled. Deliveries are handled one at a time, in the order they arrive.
    """

    def __init__(
        self,
        subscription: Subscription,
        handler: Handler,
        dead_letters: DeadLetters,
        *,
        group: str,
        policy: RedeliveryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.subscription = subscription
        self.metrics = metrics or NOOP
        self.handler = handler
        self.dead_letters = dead_letters
        self.group = group
        self.policy = policy or RedeliveryPolicy()
        self.clock = clock
        self._retry: dict[str, tuple[float, Delivery]] = {}  # event id → (due, delivery)
        self._failed: set[str] = set()  # event ids with a failure count in the store
        self._to_bury: dict[str, tuple[int, str | None]] = {}  # burying failed: try again
        self.handled = 0
        self.dead = 0

    @property
    def retrying(self) -> int:
        return len(self._retry)

    async def poll(self, max_events: int = 100, timeout: float = 1.0) -> int:
        """Handle the retries that are due, then fetch once (waiting at most ``timeout`` seconds,
        less when a retry falls due sooner) and handle what came; how many deliveries that was."""
        now = self.clock()
        due = sorted((at, event_id) for event_id, (at, _) in self._retry.items() if at <= now)
        for _, event_id in due:
            _, delivery = self._retry.pop(event_id)
            await self._deliver(delivery)
        wait = timeout
        if self._retry:
            soonest = min(at for at, _ in self._retry.values())
            wait = max(0.0, min(wait, soonest - self.clock()))
        fresh = await self.subscription.fetch(max_events, wait)
        for delivery in fresh:
            self._retry.pop(delivery.event.id, None)  # the bus delivered it again: handle it now
            await self._deliver(delivery)
        return len(due) + len(fresh)

    async def run_forever(
        self,
        max_events: int = 100,
        timeout: float = 1.0,
        on_poll: Callable[[int], None] | None = None,
    ) -> None:
        while True:
            try:
                polled = await self.poll(max_events, timeout)
                if on_poll is not None:
                    on_poll(polled)
            except asyncio.CancelledError:
                raise
            except Exception:  # the bus is unreachable: what was not acknowledged comes back
                log.warning("consumer %s: fetching failed", self.group, exc_info=True)
                await asyncio.sleep(1.0)

    def _later(self, delivery: Delivery, seconds: float) -> None:
        self._retry[delivery.event.id] = (self.clock() + seconds, delivery)

    async def _deliver(self, delivery: Delivery) -> None:
        event = delivery.event
        if event.id in self._to_bury:
            attempts, error = self._to_bury[event.id]
            await self._bury(delivery, attempts, error)
            return
        if delivery.attempt > self.policy.max_deliveries:  # consumers died handling it
            await self._bury(delivery, delivery.attempt - 1, None)
            return
        try:
            await self.handler(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._handler_failed(delivery, exc)
            return
        if not await self._ack(delivery):
            return
        self.handled += 1
        record_lag(self.metrics, self.group, event.published_at)
        if event.id in self._failed:
            self._failed.discard(event.id)
            with contextlib.suppress(Exception):
                await self.dead_letters.forget(self.group, event)

    async def _handler_failed(self, delivery: Delivery, exc: Exception) -> None:
        event, error = delivery.event, _describe(exc)
        try:
            attempts = await self.dead_letters.record_failure(self.group, delivery, error)
        except Exception:
            log.warning(
                "event %s on %s failed (%s) and the failure could not be counted: retrying",
                event.id, event.topic, error, exc_info=True,
            )  # fmt: skip
            self._later(delivery, self.policy.retry_seconds)
            return
        self._failed.add(event.id)
        log.warning(
            "event %s on %s failed, attempt %d of %d: %s",
            event.id, event.topic, attempts, self.policy.max_deliveries, error,
        )  # fmt: skip
        if attempts >= self.policy.max_deliveries:
            await self._bury(delivery, attempts, error)
        else:
            self._later(delivery, self.policy.delay(attempts))

    async def _bury(self, delivery: Delivery, attempts: int, error: str | None) -> None:
        event = delivery.event
        self._to_bury[event.id] = (attempts, error)
        try:
            await self.dead_letters.bury(self.group, delivery, attempts, error)
        except Exception:
            log.warning("event %s: dead-lettering failed, retrying", event.id, exc_info=True)
            self._later(delivery, self.policy.retry_seconds)
            return
        if await self._ack(delivery):
            self._to_bury.pop(event.id, None)
            self._failed.discard(event.id)
            self.dead += 1
            self.metrics.add(EVENT_DEAD_LETTERS, group=self.group)

    async def _ack(self, delivery: Delivery) -> bool:
        try:
            await self.subscription.ack(delivery)
        except Exception:  # the bus is unreachable: handled again later (handlers are idempotent)
            log.warning("event %s: acknowledging failed", delivery.event.id, exc_info=True)
            self._later(delivery, self.policy.retry_seconds)
            return False
        return True
