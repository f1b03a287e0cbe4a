"""The event bus contract (:class:`linqra.events.EventBus`), run on the in-process bus, Redis
Streams (a real redis-server), Kafka (aiokafka against a real tansu broker) and ``RayEventBus``
(the cluster default, ``ray://``: the in-process bus in a named actor of the session's cluster).

No test sleeps: a wait is a ``fetch`` with a deadline, and "never delivered again" is shown by a
later sentinel event arriving without it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from linqra.config import Settings
from linqra.errors import PayloadTooLarge, ValidationError
from linqra.events import EventBus, open_event_bus
from linqra.events.base import Delivery, Subscription
from linqra.events.kafka import KafkaEventBus

REDELIVER = 0.5  # seconds an unacknowledged event waits before another consumer may take it


def new_topic() -> str:
    """A fresh topic; groups are named after it too (a Kafka group spans topics, and joining a
    group that a closed consumer of an earlier test was in waits for a rebalance)."""
    return f"t-{uuid.uuid4().hex[:10]}"


async def drain(
    sub: Subscription,
    done: Callable[[list[Delivery]], bool],
    *,
    ack: bool = True,
    timeout: float = 20.0,
) -> list[Delivery]:
    """Fetch (and acknowledge) until ``done(got)`` holds; fail after ``timeout`` seconds."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while not done(got):
        assert time.monotonic() < deadline, f"gave up after {len(got)} deliveries"
        fresh = await sub.fetch(max_events=100, timeout=0.3)
        if ack:
            for delivery in fresh:
                await sub.ack(delivery)
        got += fresh
    return got


def count(n: int) -> Callable[[list[Delivery]], bool]:
    return lambda got: len(got) >= n


def until(marker: str) -> Callable[[list[Delivery]], bool]:
    return lambda got: any(d.event.payload.get("marker") == marker for d in got)


def numbers(got: list[Delivery]) -> list[int]:
    return [d.event.payload["n"] for d in got if "n" in d.event.payload]


class EventBusContract:
    """Fixture: ``bus``, an :class:`EventBus` whose unacknowledged events may go to another
    consumer after ``REDELIVER`` seconds."""

    async def test_published_events_arrive_intact_with_id_key_idempotency_key_and_headers(
        self, bus: EventBus
    ) -> None:
        topic = new_topic()
        sub = await bus.subscribe(topic, f"g-{topic}", "c1")
        sent = await bus.publish(
            topic,
            {"text": "é ✓", "nested": {"list": [1, 2.5, None, True]}},
            key="order-7",
            idempotency_key="idem-1",
            headers={"trace": "abc"},
        )
        [got] = await drain(sub, count(1))
        assert got.event.id == sent.id and sent.id
        assert got.event.topic == topic
        assert got.event.payload == {"text": "é ✓", "nested": {"list": [1, 2.5, None, True]}}
        assert (got.event.key, got.event.idempotency_key) == ("order-7", "idem-1")
        assert dict(got.event.headers) == {"trace": "abc"}
        assert got.event.published_at == sent.published_at
        await sub.close()

    async def test_events_with_the_same_key_arrive_in_the_order_they_were_published(
        self, bus: EventBus
    ) -> None:
        topic = new_topic()
        sub = await bus.subscribe(topic, f"g-{topic}", "c1")
        for i in range(8):
            await bus.publish(topic, {"n": i}, key="one-key")
        assert numbers(await drain(sub, count(8))) == list(range(8))
        await sub.close()

    async def test_every_group_sees_every_event(self, bus: EventBus) -> None:
        topic = new_topic()
        a, b = await asyncio.gather(
            bus.subscribe(topic, f"group-a-{topic}", "a1"),
            bus.subscribe(topic, f"group-b-{topic}", "b1"),
        )
        for i in range(6):
            await bus.publish(topic, {"n": i})
        assert sorted(numbers(await drain(a, count(6)))) == list(range(6))
        assert sorted(numbers(await drain(b, count(6)))) == list(range(6))
        await a.close()
        await b.close()

    async def test_the_consumers_of_one_group_share_the_events(self, bus: EventBus) -> None:
        topic = new_topic()
        # one after the other: two members joining a new Kafka group at once can hold both in
        # a rebalance longer than subscribe's bound on a busy machine (what this test asks is
        # that the members share the events, not how fast a group forms)
        first = await bus.subscribe(topic, f"workers-{topic}", "w1")
        second = await bus.subscribe(topic, f"workers-{topic}", "w2")
        for i in range(10):
            await bus.publish(topic, {"n": i})
        got: dict[str, list[Delivery]] = {"w1": [], "w2": []}
        # a bound, not a wait: on a busy machine Kafka's group rebalance alone took over 20 s
        deadline = time.monotonic() + 60
        while {n for batch in got.values() for n in numbers(batch)} != set(range(10)):
            assert time.monotonic() < deadline, got
            for name, sub in (("w1", first), ("w2", second)):
                fresh = await sub.fetch(timeout=0.2)
                for delivery in fresh:
                    await sub.ack(delivery)
                got[name] += fresh
        # together they received every event, and not as two copies of the stream
        assert len(got["w1"]) + len(got["w2"]) < 20
        await first.close()
        await second.close()

    async def test_a_new_group_reads_the_topic_from_its_start(self, bus: EventBus) -> None:
        topic = new_topic()
        for i in range(3):
            await bus.publish(topic, {"n": i}, key="k")
        late = await bus.subscribe(topic, f"late-group-{topic}", "c1")
        assert numbers(await drain(late, count(3))) == [0, 1, 2]
        await late.close()

    async def test_a_subscription_receives_only_its_topics_events(self, bus: EventBus) -> None:
        mine, other = new_topic(), new_topic()
        sub = await bus.subscribe(mine, f"g-{mine}", "c1")
        await bus.publish(other, {"n": 1})
        await bus.publish(mine, {"marker": "end"})
        got = await drain(sub, until("end"))
        assert [d.event.topic for d in got] == [mine] and numbers(got) == []
        await sub.close()

    async def test_fetch_returns_at_most_max_events(self, bus: EventBus) -> None:
        topic = new_topic()
        sub = await bus.subscribe(topic, f"g-{topic}", "c1")
        for i in range(5):
            await bus.publish(topic, {"n": i}, key="k")
        got: list[Delivery] = []
        while len(got) < 5:
            fresh = await sub.fetch(max_events=2, timeout=5)
            assert 0 < len(fresh) <= 2
            got += fresh
        assert numbers(got) == list(range(5))
        await sub.close()

    async def test_fetch_returns_as_soon_as_an_event_arrives_and_empty_when_none_came(
        self, bus: EventBus
    ) -> None:
        topic = new_topic()
        sub = await bus.subscribe(topic, f"g-{topic}", "c1")
        await bus.publish(topic, {"marker": "joined"})
        await drain(sub, until("joined"))  # the consumer is in its group
        started = time.monotonic()
        assert await sub.fetch(timeout=0.3) == []
        assert time.monotonic() - started < 5  # waited about the timeout, no more
        waiting = asyncio.create_task(sub.fetch(timeout=30))
        started = time.monotonic()
        await bus.publish(topic, {"n": 1})
        got = await waiting
        assert numbers(got) == [1] and time.monotonic() - started < 10  # well before 30 s
        await sub.ack(got[0])
        await sub.close()

    async def test_an_acknowledged_event_is_never_delivered_again(self, bus: EventBus) -> None:
        topic = new_topic()
        first = await bus.subscribe(topic, f"g-{topic}", "c1")
        for i in range(3):
            await bus.publish(topic, {"n": i})
        await drain(first, count(3))  # all acknowledged
        await first.close()
        second = await bus.subscribe(topic, f"g-{topic}", "c2")
        await bus.publish(topic, {"marker": "after"})
        got = await drain(second, until("after"))
        assert numbers(got) == []
        await second.close()

    async def test_what_a_closed_consumer_did_not_acknowledge_goes_to_another_consumer(
        self, bus: EventBus
    ) -> None:
        topic = new_topic()
        first = await bus.subscribe(topic, f"workers-{topic}", "w1")
        for i in range(3):
            await bus.publish(topic, {"n": i})
        taken = await drain(first, count(3), ack=False)
        await first.ack(taken[0])  # one done; two in flight when it "dies"
        await first.close()
        second = await bus.subscribe(topic, f"workers-{topic}", "w2")
        await bus.publish(topic, {"marker": "after"})
        rest = {0, 1, 2} - {taken[0].event.payload["n"]}
        got = await drain(second, lambda got: set(numbers(got)) >= rest and until("after")(got))
        assert sorted(numbers(got)) == sorted(rest)  # the acknowledged one never comes back
        await second.close()

    async def test_a_redelivery_counts_its_attempt(self, bus: EventBus) -> None:
        topic = new_topic()
        first = await bus.subscribe(topic, f"workers-{topic}", "w1")
        await bus.publish(topic, {"n": 1})
        [once] = await drain(first, count(1), ack=False)
        assert once.attempt == 1
        await first.close()
        second = await bus.subscribe(topic, f"workers-{topic}", "w2")
        [again] = await drain(second, count(1))
        assert again.event.id == once.event.id and again.attempt >= 2
        await second.close()

    async def test_bad_topics_and_oversized_events_are_refused(self, bus: EventBus) -> None:
        for call in (bus.publish("bad topic!", {}), bus.subscribe("", "g", "c")):
            with pytest.raises(ValidationError) as err:
                await call
            assert err.value.field == "topic"
        with pytest.raises(PayloadTooLarge):
            await bus.publish(new_topic(), {"blob": "x" * 300_000})


# -- the adapters --------------------------------------------------------------------------------
class TestMemoryEventBus(EventBusContract):
    @pytest.fixture
    async def bus(self) -> AsyncIterator[EventBus]:
        opened = open_event_bus("memory://", redeliver_after=REDELIVER)
        yield opened
        await opened.close()


class TestRedisEventBus(EventBusContract):
    @pytest.fixture
    async def bus(self, redis_url: str) -> AsyncIterator[EventBus]:
        opened = open_event_bus(redis_url, redeliver_after=REDELIVER)
        yield opened
        await opened.close()


class TestKafkaEventBus(EventBusContract):
    @pytest.fixture
    async def bus(self, kafka_bootstrap: str) -> AsyncIterator[EventBus]:
        # tansu holds a group's next join for two session timeouts after a member left: a short
        # session keeps the crash and redelivery tests at about a second each
        opened = KafkaEventBus(kafka_bootstrap, session_timeout_ms=1000)
        yield opened
        await opened.close()


@pytest.mark.ray
class TestRayEventBus(EventBusContract):
    @pytest.fixture(scope="class")
    def cluster_settings(self, ray_cluster: Any, ray_settings: Settings) -> Iterator[Settings]:
        """The session cluster, with a bus actor of this class's own (its own namespace, so its
        redelivery time is ours and nothing else's events meet these)."""
        import ray

        from actors.events import EVENTS_NAME

        namespace = f"contracts-{uuid.uuid4().hex[:8]}"
        settings = ray_settings.model_copy(
            update={
                "ray": ray_settings.ray.model_copy(update={"namespace": namespace}),
                "agents": ray_settings.agents.model_copy(
                    update={"events_url": "ray://", "stale_after_seconds": REDELIVER}
                ),
            }
        )
        yield settings
        ray.kill(ray.get_actor(EVENTS_NAME, namespace=namespace))

    @pytest.fixture
    async def bus(self, cluster_settings: Settings) -> AsyncIterator[EventBus]:
        from actors.events import RayEventBus, open_bus

        opened = open_bus(cluster_settings)  # ray:// is the cluster default
        assert isinstance(opened, RayEventBus)
        yield opened
        await opened.close()
