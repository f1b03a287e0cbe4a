"""Bounded redelivery over every bus (in-process, Redis Streams, Kafka, and the cluster's ``ray://``
bus): a poison event is attempted exactly ``max_deliveries`` times, then becomes a dead letter of
its team and is never delivered again, while the events behind it keep flowing."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from linqra.config import Settings
from linqra.errors import NotFound, StoreError
from linqra.events import DeadLetters, EventBus, GuardedConsumer, RedeliveryPolicy, open_event_bus
from linqra.events.base import Delivery, Event
from linqra.events.dead_letters import EVENT_ATTEMPTS
from linqra.events.kafka import KafkaEventBus
from linqra.scheduling.triggers import EventRouter, publish_team_event, team_topic
from linqra.system import System

REDELIVER = 0.5  # seconds an unacknowledged event waits before the bus gives it to another consumer
POLICY = RedeliveryPolicy(max_deliveries=3, retry_seconds=0.05)


@pytest.fixture(scope="module")
def ray_bus_settings(request: pytest.FixtureRequest) -> Iterator[Settings]:
    """The session cluster with a ``ray://`` bus actor of this module's own (own namespace)."""
    import ray

    from actors.events import EVENTS_NAME

    ray_settings: Settings = request.getfixturevalue("ray_settings")
    request.getfixturevalue("ray_cluster")
    namespace = f"dead-letters-{uuid.uuid4().hex[:8]}"
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


async def _open(request: pytest.FixtureRequest, kind: str) -> EventBus:
    if kind == "memory":
        return open_event_bus("memory://", redeliver_after=REDELIVER)
    if kind == "redis":
        return open_event_bus(request.getfixturevalue("redis_url"), redeliver_after=REDELIVER)
    if kind == "kafka":
        return KafkaEventBus(request.getfixturevalue("kafka_bootstrap"), session_timeout_ms=1000)
    from actors.events import open_bus

    return open_bus(request.getfixturevalue("ray_bus_settings"))


RAY = pytest.param("ray", marks=pytest.mark.ray)


@pytest.fixture(params=["memory", "redis", "kafka", RAY])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    opened = await _open(request, request.param)
    yield opened
    await opened.close()


@pytest.fixture(params=["memory", "redis", "kafka", RAY])
async def counting_bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    """The buses count deliveries themselves (Kafka in a side topic: it redelivers only after a
    rebalance, from the last committed offset)."""
    opened = await _open(request, request.param)
    yield opened
    await opened.close()


def new_topic() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def poll_until(
    consumer: GuardedConsumer, done: Callable[[], Any], timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while not await done():
        assert time.monotonic() < deadline, f"not done within {timeout}s"
        await consumer.poll(100, 0.2)


async def test_a_poison_event_is_attempted_n_times_then_dead_lettered_for_its_team_only(
    bus: EventBus, system: System
) -> None:
    name = new_topic()
    group = f"g-{name}"
    sub = await bus.subscribe(team_topic("acme", name), group, "c1")
    calls: Counter[int] = Counter()

    async def handle(event: Event) -> None:
        calls[event.payload["n"]] += 1
        if event.payload.get("poison"):
            raise RuntimeError(f"cannot digest order {event.payload['n']}")

    letters = DeadLetters(system.store)
    consumer = GuardedConsumer(sub, handle, letters, group=group, policy=POLICY)
    await publish_team_event(bus, "acme", name, {"n": 1})
    poison = await publish_team_event(bus, "acme", name, {"n": 2, "poison": True})
    for n in (3, 4):
        await publish_team_event(bus, "acme", name, {"n": n})

    async def settled() -> bool:
        return (await letters.list_dead_letters("acme"))[1] == 1 and all(
            calls[n] for n in (1, 3, 4)
        )

    await poll_until(consumer, settled)
    assert calls[2] == POLICY.max_deliveries  # exactly N attempts
    assert calls[1] == calls[3] == calls[4] == 1  # the good ones flowed, once each
    [letter], total = await letters.list_dead_letters("acme")
    assert total == 1 and letter["event_id"] == poison.id and letter["topic"] == name
    assert letter["attempts"] == POLICY.max_deliveries and letter["group"] == group
    assert letter["last_error"] == "RuntimeError: cannot digest order 2"
    assert json.loads(letter["payload_json"]) == {"n": 2, "poison": True}
    assert not letter["payload_truncated"]
    assert letter["first_failure_at"] < letter["last_failure_at"] <= letter["dead_at"]
    assert await system.store.count(EVENT_ATTEMPTS, "acme") == 0  # the count is not left behind
    # its team only
    assert await letters.list_dead_letters("other") == ([], 0)
    with pytest.raises(NotFound):
        await letters.get("other", letter["id"])
    # never delivered again: a later event arrives, the poison does not come back with it
    await publish_team_event(bus, "acme", name, {"n": 5})

    async def fifth() -> bool:
        return calls[5] == 1

    await poll_until(consumer, fifth)
    assert calls[2] == POLICY.max_deliveries and consumer.dead == 1 and consumer.retrying == 0
    await sub.close()


async def test_a_nan_payload_is_dead_lettered_while_good_events_start_their_tasks(
    bus: EventBus, system: System
) -> None:
    """The reported case: a payload the store cannot hold (NaN) failed every 30 s forever."""
    agents = system.agents
    agent = await agents.create_agent("acme", {"name": "orders"})
    name = new_topic()
    task = await agents.create_task("acme", agent.id, {
        "name": "on order", "type": "DATA_PROCESSING", "config": {"expression": "total"},
        "triggers": [{"type": "EVENT_DRIVEN", "topic": name}],
    })  # fmt: skip
    started: list[str] = []

    async def dispatch(team: str, agent_id: str, tx_id: str, priority: int) -> None:
        started.append(tx_id)

    router = EventRouter(agents, dispatch)
    group = f"triggers-{name}"
    sub = await bus.subscribe(team_topic("acme", name), group, "scheduler")
    letters = DeadLetters(system.store)
    consumer = GuardedConsumer(sub, router.handle, letters, group=group, policy=POLICY)
    await publish_team_event(bus, "acme", name, {"total": 1})
    nan = await publish_team_event(bus, "acme", name, {"total": math.nan})
    await publish_team_event(bus, "acme", name, {"total": 3})

    async def settled() -> bool:
        return (await letters.list_dead_letters("acme"))[1] == 1 and len(started) == 2

    await poll_until(consumer, settled)
    [letter], _ = await letters.list_dead_letters("acme")
    assert letter["event_id"] == nan.id and letter["payload_json"] == '{"total": NaN}'
    assert letter["attempts"] == POLICY.max_deliveries and letter["last_error"]
    runs, total = await agents.list_task_executions("acme", task_id=task.id)
    assert total == 2 and sorted(r["input"]["total"] for r in runs) == [1, 3]
    await sub.close()


async def test_an_event_whose_consumers_keep_dying_is_dead_lettered_without_running_again(
    counting_bus: EventBus, system: System
) -> None:
    """A poison that kills its consumer never reports a failure: the bus's delivery count
    bounds it (Redis Streams: XPENDING's times delivered)."""
    bus = counting_bus
    name = new_topic()
    group = f"g-{name}"
    topic = team_topic("acme", name)
    killer = await publish_team_event(bus, "acme", name, {"kills": "its consumer"})
    policy = RedeliveryPolicy(max_deliveries=2, retry_seconds=0.05)
    for attempt in range(1, policy.max_deliveries + 1):
        doomed = await bus.subscribe(topic, group, f"c{attempt}")
        deadline = time.monotonic() + 20
        got: list[Delivery] = []
        while not got:
            assert time.monotonic() < deadline, f"delivery {attempt} did not come"
            got = await doomed.fetch(1, 0.3)
        assert got[0].event.id == killer.id and got[0].attempt == attempt
        await doomed.close()  # it "died" handling it: no ack, no failure recorded
    handled: list[str] = []

    async def handle(event: Event) -> None:
        handled.append(event.id)

    letters = DeadLetters(system.store)
    survivor = await bus.subscribe(topic, group, "survivor")
    consumer = GuardedConsumer(survivor, handle, letters, group=group, policy=policy)

    async def buried() -> bool:
        return (await letters.list_dead_letters("acme"))[1] == 1

    await poll_until(consumer, buried)
    [letter], _ = await letters.list_dead_letters("acme")
    assert handled == [] and letter["event_id"] == killer.id and letter["attempts"] == 2
    assert "stopped 2 times" in letter["last_error"]
    await survivor.close()


async def test_dead_letters_are_replayed_or_deleted_by_their_team(system: System) -> None:
    bus = open_event_bus("memory://", redeliver_after=REDELIVER)
    name = new_topic()
    sub = await bus.subscribe(team_topic("acme", name), "g", "c1")
    broken = True
    handled: list[dict[str, Any]] = []

    async def handle(event: Event) -> None:
        if broken:
            raise ValueError("downstream refuses it")
        handled.append(dict(event.payload))

    letters = DeadLetters(system.store)
    once = RedeliveryPolicy(max_deliveries=1, retry_seconds=0.05)
    consumer = GuardedConsumer(sub, handle, letters, group="g", policy=once)
    for n in (1, 2):
        await publish_team_event(bus, "acme", name, {"n": n}, idempotency_key=f"order-{n}")

    async def two() -> bool:
        return (await letters.list_dead_letters("acme"))[1] == 2

    await poll_until(consumer, two)
    items, _ = await letters.list_dead_letters("acme")
    by_n = {json.loads(i["payload_json"])["n"]: i for i in items}
    with pytest.raises(NotFound):
        await letters.replay("other", by_n[1]["id"], bus)
    broken = False
    again = await letters.replay("acme", by_n[1]["id"], bus)
    assert again.idempotency_key == "order-1" and again.headers["team_id"] == "acme"

    async def replayed() -> bool:
        return handled == [{"n": 1}]

    await poll_until(consumer, replayed)
    await letters.delete("acme", by_n[2]["id"])
    with pytest.raises(NotFound):
        await letters.delete("acme", by_n[2]["id"])
    assert await letters.list_dead_letters("acme") == ([], 0)
    await sub.close()
    await bus.close()


async def test_a_failure_that_cannot_be_counted_is_retried_not_dead_lettered(
    system: System,
) -> None:
    """While the store is down nothing is counted, so an outage never buries good events."""

    class StoreDownAtFirst(DeadLetters):
        outages = 3

        async def record_failure(self, group: str, delivery: Delivery, error: str) -> int:
            if self.outages:
                self.outages -= 1
                raise StoreError("the store is unavailable")
            return await super().record_failure(group, delivery, error)

    bus = open_event_bus("memory://", redeliver_after=REDELIVER)
    name = new_topic()
    sub = await bus.subscribe(team_topic("acme", name), "g", "c1")
    calls = 0

    async def handle(event: Event) -> None:
        nonlocal calls
        calls += 1
        raise StoreError("the store is unavailable")

    letters = StoreDownAtFirst(system.store)
    policy = RedeliveryPolicy(max_deliveries=2, retry_seconds=0.05)
    consumer = GuardedConsumer(sub, handle, letters, group="g", policy=policy)
    await publish_team_event(bus, "acme", name, {"n": 1})

    async def buried() -> bool:
        return consumer.dead == 1

    await poll_until(consumer, buried)
    assert calls == 3 + 2  # three uncounted attempts during the outage, then two counted
    [letter], _ = await letters.list_dead_letters("acme")
    assert letter["attempts"] == 2 and "store_unavailable" in letter["last_error"]
    await sub.close()
    await bus.close()
