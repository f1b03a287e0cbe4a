"""Kafka (``aiokafka``): a topic is a topic, a group a consumer group with manual commits.

Offsets are committed only up to the last event acknowledged without a gap, so whatever a
consumer fetched and did not acknowledge before it died is delivered again to the group
(at least once; duplicates are what idempotency keys are for). New groups read a topic from its
start (``auto_offset_reset=earliest``). Producers are not idempotent: some Kafka-compatible
brokers (tansu) do not support it, and our own idempotency keys cover it.

An outage is an error, not a wait: publishing, subscribing and committing are bounded by
``timeout_seconds`` and the broker's connection errors and timeouts become
:class:`~linqra.errors.StoreError` (503). A publish that timed out may still be delivered
once the broker is back (at least once, as above).

Kafka keeps no delivery count, so the bus keeps one (``Delivery.attempt``). While a consumer
holds a partition, it remembers the last offset it handed out; before each fetch's events are
handed out, that offset and the earlier holders' (those not yet committed past) are written to a
side topic of one partition per group and partition (:func:`deliveries_topic`), whose last record
is the state. The next holder, another member or the same consumer after a rebalance, reads that
record first: an event is delivered for the ``1 + n``-th time when ``n`` earlier holders handed
it out. So a consumer that closes or dies without acknowledging is counted, as Redis Streams
counts, and the count is exact up to :data:`MAX_COUNTED_HOLDERS` redeliveries. Side records are
small (one per non-empty fetch); the broker's retention bounds them, and a state older than the
retention is forgotten (its events count from 1 again). Also an outage of a side-topic read or
write is an error: the fetched events are fetched again next time, with the same counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from linqra.events.base import Delivery, Event, check_topic, event_from_json, new_event
from linqra.store.base import DEFAULT_TIMEOUT_SECONDS, unavailable

__all__ = ["MAX_COUNTED_HOLDERS", "KafkaEventBus", "deliveries_topic"]

log = logging.getLogger(__name__)

MAX_COUNTED_HOLDERS = 100  # earlier holders of a partition remembered (attempts counted exactly)


def deliveries_topic(topic: str, group: str, partition: int) -> str:
    """The side topic that remembers what ``group`` was handed out of ``topic``'s ``partition``
    (at most 230 characters: Kafka allows 249)."""
    digest = hashlib.sha256(group.encode()).hexdigest()[:12]
    return f"{topic}.deliveries.{digest}.{partition}"


@asynccontextmanager
async def _guard(what: str, timeout: float) -> AsyncIterator[None]:
    """Bound one call in time; the broker's outages become StoreError."""
    from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

    try:
        async with asyncio.timeout(timeout):
            yield
    except TimeoutError:
        raise unavailable(f"the event bus did not answer ({what}) within {timeout:g}s") from None
    except KafkaError as exc:
        if not (
            isinstance(exc, KafkaConnectionError | KafkaTimeoutError)
            or getattr(exc, "retriable", False)
        ):
            raise
        log.warning("kafka event bus %s failed: %s: %s", what, type(exc).__name__, exc)
        raise unavailable(
            f"the event bus is unreachable ({what}: Kafka {type(exc).__name__})"
        ) from None


class KafkaEventBus:
    name = "kafka"

    def __init__(
        self,
        bootstrap: str,
        *,
        session_timeout_ms: int = 10_000,
        fetch_max_wait_ms: int = 20,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        linger_ms: int = 0,
        max_batch_bytes: int = 16_384,
    ) -> None:
        self.bootstrap = bootstrap
        self.linger_ms = linger_ms
        self.max_batch_bytes = max_batch_bytes
        self.timeout = timeout_seconds
        self.session_timeout_ms = session_timeout_ms
        # how long the broker may hold a fetch open waiting for data: the floor of event latency
        # (aiokafka's 500 ms default made an event wait 140 ms at p50 at 100 events/s)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self._producer: Any = None
        self._reader: Any = None  # reads the last record of a side topic (no group)
        self._starting = asyncio.Lock()
        self._reading = asyncio.Lock()

    async def _producer_started(self) -> Any:
        async with self._starting:
            return await self._start_producer()

    async def _start_producer(self) -> Any:
        if self._producer is None:
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                enable_idempotence=False,
                acks="all",
                request_timeout_ms=int(self.timeout * 1000),
                linger_ms=self.linger_ms,
                max_batch_size=self.max_batch_bytes,
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def publish(
        self,
        topic: str,
        payload: Mapping[str, Any],
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Event:
        event, body = new_event(topic, payload, key, idempotency_key, headers)
        async with _guard("publish", self.timeout):
            producer = await self._producer_started()
            await producer.send_and_wait(topic, body, key=key.encode() if key else None)
        return event

    async def subscribe(self, topic: str, group: str, consumer: str) -> _KafkaSubscription:
        from aiokafka import AIOKafkaConsumer

        check_topic(topic)
        client = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=group,
            client_id=consumer,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(100, self.session_timeout_ms // 5),
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        subscription = _KafkaSubscription(self, client, topic, group)
        client.subscribe([topic], listener=subscription.listener())
        try:
            async with _guard("subscribe", self.timeout):
                await client.start()
        except BaseException:
            await client.stop()
            raise
        return subscription

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.stop()

    # -- delivery counts (see the module docstring) ---------------------------------------------
    async def _read_holders(self, topic: str, group: str, partition: int) -> list[int]:
        """The last offset each earlier holder of the partition handed out to the group."""
        from aiokafka.structs import TopicPartition

        side = deliveries_topic(topic, group, partition)
        producer = await self._producer_started()
        await producer.partitions_for(side)  # made on first use, as a topic is on first publish
        tp = TopicPartition(side, 0)
        async with self._reading:
            reader = await self._reader_started()
            reader.assign([tp])
            start = (await reader.beginning_offsets([tp]))[tp]
            end = (await reader.end_offsets([tp]))[tp]
            if end <= start:
                return []
            reader.seek(tp, end - 1)
            records: list[Any] = []
            while not records:  # bounded by the caller's guard
                records = (await reader.getmany(tp, timeout_ms=200)).get(tp, [])
        try:
            return [int(end) for end in json.loads(records[-1].value)["ends"]]
        except (ValueError, KeyError, TypeError):
            log.warning("kafka event bus: unreadable delivery record in %s, ignored", side)
            return []

    async def _write_holders(self, topic: str, group: str, partition: int, ends: list[int]) -> Any:
        """Record the holders' last offsets (returns the send's future, to await with others)."""
        record = {"topic": topic, "group": group, "partition": partition, "ends": ends}
        producer = await self._producer_started()
        return await producer.send(
            deliveries_topic(topic, group, partition), json.dumps(record).encode(), partition=0
        )

    async def _reader_started(self) -> Any:
        if self._reader is None:
            from aiokafka import AIOKafkaConsumer

            reader = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                enable_auto_commit=False,
                fetch_max_wait_ms=self.fetch_max_wait_ms,
                request_timeout_ms=int(self.timeout * 1000),
            )
            try:
                await reader.start()
            except BaseException:
                await reader.stop()
                raise
            self._reader = reader
        return self._reader


@dataclass
class _Held:
    """A partition while this consumer holds it, from its assignment to its revocation."""

    earlier: list[int] | None = None  # each earlier holder's last offset handed out (None: unread)
    last: int = -1  # the last offset handed out while we hold it
    delivered: list[int] = field(default_factory=list)  # handed out, not committed past, in order
    acked: set[int] = field(default_factory=set)

    def attempt(self, offset: int) -> int:
        return 1 + sum(1 for end in self.earlier or () if end >= offset)

    def ends(self) -> list[int]:
        """What the next holder must know: the last offsets, ours included, not committed past."""
        floor = self.delivered[0] if self.delivered else self.last + 1
        ends = [end for end in (*(self.earlier or ()), self.last) if end >= floor]
        return sorted(ends, reverse=True)[:MAX_COUNTED_HOLDERS]


class _KafkaSubscription:
    def __init__(self, bus: KafkaEventBus, client: Any, topic: str, group: str) -> None:
        self.bus, self.client, self.topic, self.group = bus, client, topic, group
        self.timeout = bus.timeout
        self._held: dict[Any, _Held] = {}  # partition → its state while we hold it

    def listener(self) -> Any:
        """Forgets a partition's state when it is revoked or (again) assigned."""
        from aiokafka.abc import ConsumerRebalanceListener

        held = self._held

        class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                for partition in revoked:
                    held.pop(partition, None)

            def on_partitions_assigned(self, assigned: Any) -> None:
                for partition in assigned:
                    held[partition] = _Held()

        return Rebalance()

    async def fetch(self, max_events: int = 100, timeout: float = 1.0) -> list[Delivery]:
        async with _guard("fetch", self.timeout + timeout):
            batches = await self.client.getmany(
                timeout_ms=int(timeout * 1000), max_records=max_events
            )
        batches = {partition: records for partition, records in batches.items() if records}
        if not batches:
            return []
        try:  # count, and record what is handed out, before it is
            async with _guard("fetch (delivery counts)", self.timeout):
                return await self._count(batches)
        except BaseException:  # fetched again next time, with the same counts
            for partition, records in batches.items():
                with contextlib.suppress(Exception):  # revoked meanwhile: its next holder will
                    self.client.seek(partition, records[0].offset)
            raise

    async def _count(self, batches: dict[Any, list[Any]]) -> list[Delivery]:
        out: list[Delivery] = []
        sent: list[Any] = []
        for partition, records in batches.items():
            held = self._held.setdefault(partition, _Held())
            if held.earlier is None:
                held.earlier = await self.bus._read_holders(
                    self.topic, self.group, partition.partition
                )
            for record in records:
                event = event_from_json(self.topic, json.loads(record.value))
                if record.offset > held.last:  # not a fetch again after an outage
                    held.delivered.append(record.offset)
                    held.last = record.offset
                out.append(Delivery(event, (partition, record.offset), held.attempt(record.offset)))
            sent.append(
                await self.bus._write_holders(
                    self.topic, self.group, partition.partition, held.ends()
                )
            )
        await asyncio.gather(*sent)
        return out

    async def ack(self, delivery: Delivery) -> None:
        from aiokafka.structs import OffsetAndMetadata

        partition, offset = delivery.token
        held = self._held.get(partition)
        if held is None or not held.delivered or offset < held.delivered[0]:
            return  # revoked meanwhile (its next holder delivers it again), or committed already
        held.acked.add(offset)
        done = 0
        while done < len(held.delivered) and held.delivered[done] in held.acked:
            held.acked.discard(held.delivered[done])  # commit up to the first gap
            done += 1
        if done:
            next_offset = held.delivered[done - 1] + 1
            del held.delivered[:done]
            async with _guard("ack", self.timeout):
                await self.client.commit({partition: OffsetAndMetadata(next_offset, "")})

    async def close(self) -> None:
        await self.client.stop()
