"""Kafka (``aiokafka``): a topic is a topic, a group a consumer group with manual commits.

Offsets are committed only up to the last event acknowledged without a gap, so whatever a
consumer fetched and did not acknowledge before it died is delivered again to the group
(at least once; duplicates are what idempotency keys are for). New groups read a topic from its
start (``auto_offset_reset=earliest``). Producers are not idempotent: some Kafka-compatible
brokers (tansu) do not support it, and our own idempotency keys cover it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from linqra.events.base import Delivery, Event, check_topic, event_from_json, new_event

__all__ = ["KafkaEventBus"]


class KafkaEventBus:
    name = "kafka"

    def __init__(
        self, bootstrap: str, *, session_timeout_ms: int = 10_000, fetch_max_wait_ms: int = 20
    ) -> None:
        self.bootstrap = bootstrap
        self.session_timeout_ms = session_timeout_ms
        # how long the broker may hold a fetch open waiting for data: the floor of event latency
        # (aiokafka's 500 ms default made an event wait 140 ms at p50 at 100 events/s)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self._producer: Any = None

    async def _producer_started(self) -> Any:
        if self._producer is None:
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, enable_idempotence=False, acks="all"
            )
            await producer.start()
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
        producer = await self._producer_started()
        await producer.send_and_wait(topic, body, key=key.encode() if key else None)
        return event

    async def subscribe(self, topic: str, group: str, consumer: str) -> _KafkaSubscription:
        from aiokafka import AIOKafkaConsumer

        check_topic(topic)
        client = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            group_id=group,
            client_id=consumer,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(100, self.session_timeout_ms // 5),
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        await client.start()
        return _KafkaSubscription(client, topic)

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()


class _KafkaSubscription:
    def __init__(self, client: Any, topic: str) -> None:
        self.client, self.topic = client, topic
        self._delivered: dict[Any, list[int]] = {}  # partition → offsets handed out, in order
        self._acked: dict[Any, set[int]] = {}

    async def fetch(self, max_events: int = 100, timeout: float = 1.0) -> list[Delivery]:
        batches = await self.client.getmany(timeout_ms=int(timeout * 1000), max_records=max_events)
        out: list[Delivery] = []
        for partition, records in batches.items():
            for record in records:
                event = event_from_json(self.topic, json.loads(record.value))
                self._delivered.setdefault(partition, []).append(record.offset)
                out.append(Delivery(event, (partition, record.offset), 1))
        return out

    async def ack(self, delivery: Delivery) -> None:
        from aiokafka.structs import OffsetAndMetadata

        partition, offset = delivery.token
        acked = self._acked.setdefault(partition, set())
        acked.add(offset)
        delivered = self._delivered.get(partition, [])
        done = 0
        while done < len(delivered) and delivered[done] in acked:  # commit up to the first gap
            acked.discard(delivered[done])
            done += 1
        if done:
            next_offset = delivered[done - 1] + 1
            del delivered[:done]
            await self.client.commit({partition: OffsetAndMetadata(next_offset, "")})

    async def close(self) -> None:
        await self.client.stop()
