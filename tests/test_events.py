"""One contract suite over every event bus adapter: in-process, Redis Streams (real redis-server),
Kafka (aiokafka against a real tansu broker)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from linqra.errors import PayloadTooLarge, ValidationError
from linqra.events import EventBus, ProcessedEvents, open_event_bus
from linqra.events.base import Delivery, Subscription
from linqra.system import System

REDELIVER = 0.5  # seconds an unacknowledged event waits before another consumer may take it


@pytest.fixture(params=["memory", "redis", "kafka"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "redis":
        url = request.getfixturevalue("redis_url")
    else:
        url = "kafka://" + request.getfixturevalue("kafka_bootstrap")
    opened = open_event_bus(url, redeliver_after=REDELIVER)
    if request.param == "kafka":
        opened.session_timeout_ms = 2000  # type: ignore[attr-defined]  # quick group joins in tests
    yield opened
    await opened.close()


def topic() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def drain(sub: Subscription, want: int, timeout: float = 15.0) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < want and asyncio.get_running_loop().time() < deadline:
        got += await sub.fetch(max_events=want - len(got), timeout=0.5)
    return got


async def test_publish_and_consume_in_order_with_payload_intact(bus: EventBus) -> None:
    name = topic()
    sub = await bus.subscribe(name, "g1", "c1")
    sent = [
        await bus.publish(name, {"n": i, "text": "é"}, key="k", idempotency_key=f"i{i}")
        for i in range(5)
    ]
    got = await drain(sub, 5)
    # one key: one partition, so the order holds on Kafka too
    assert [d.event.payload for d in got] == [{"n": i, "text": "é"} for i in range(5)]
    assert [d.event.id for d in got] == [e.id for e in sent]
    assert got[0].event.idempotency_key == "i0" and got[0].event.key == "k" and got[0].attempt == 1
    for delivery in got:
        await sub.ack(delivery)
    assert await sub.fetch(timeout=0.3) == []
    await sub.close()


async def test_every_group_sees_every_event_and_members_share_them(bus: EventBus) -> None:
    name = topic()
    a1 = await bus.subscribe(name, "group-a", "a1")
    b1 = await bus.subscribe(name, "group-b", "b1")
    for i in range(6):
        await bus.publish(name, {"n": i})
    got_a = await drain(a1, 6)
    got_b = await drain(b1, 6)
    assert sorted(d.event.payload["n"] for d in got_a) == list(range(6))
    assert sorted(d.event.payload["n"] for d in got_b) == list(range(6))
    for sub, got in ((a1, got_a), (b1, got_b)):
        for delivery in got:
            await sub.ack(delivery)
        await sub.close()


async def test_a_crashed_consumers_events_are_delivered_again(bus: EventBus) -> None:
    """At least once: what a consumer fetched and never acknowledged goes to another member."""
    name = topic()
    first = await bus.subscribe(name, "workers", "w1")
    for i in range(3):
        await bus.publish(name, {"n": i})
    taken = await drain(first, 3)
    assert len(taken) == 3
    await first.ack(taken[0])  # one done; two in flight when it "crashes"
    await first.close()
    await asyncio.sleep(REDELIVER + 0.2)
    second = await bus.subscribe(name, "workers", "w2")
    again = await drain(second, 2, timeout=20)
    acked = taken[0].event.payload["n"]  # partitions may reorder: whichever came first
    assert sorted(d.event.payload["n"] for d in again) == sorted({0, 1, 2} - {acked})
    for delivery in again:
        await second.ack(delivery)
    assert await second.fetch(timeout=0.5) == []  # the acknowledged one never comes back
    await second.close()


async def test_bad_topics_and_oversized_events_are_refused(bus: EventBus) -> None:
    with pytest.raises(ValidationError) as err:
        await bus.publish("bad topic!", {})
    assert err.value.field == "topic"
    with pytest.raises(PayloadTooLarge):
        await bus.publish(topic(), {"blob": "x" * 300_000})


async def test_idempotency_keys_run_a_redelivered_event_once(system: System) -> None:
    processed = ProcessedEvents(system.store, stale_after_seconds=0.2)
    runs: list[str] = []

    async def handle(key: str, owner: str) -> None:
        if await processed.claim("acme", key, owner):
            runs.append(owner)
            await processed.done("acme", key)

    await asyncio.gather(handle("ev-1", "a"), handle("ev-1", "b"))  # two deliveries at once
    await handle("ev-1", "c")  # a later redelivery
    assert len(runs) == 1
    # a consumer that claimed and died: after the claim goes stale, the next delivery runs it
    assert await processed.claim("acme", "ev-2", "dies")
    assert not await processed.claim("acme", "ev-2", "too-early")
    await asyncio.sleep(0.3)
    assert await processed.claim("acme", "ev-2", "survivor")
    # a failed handler releases its claim, so the next delivery tries again
    assert await processed.claim("acme", "ev-3", "x")
    await processed.release("acme", "ev-3")
    assert await processed.claim("acme", "ev-3", "y")


def test_unknown_bus_url() -> None:
    with pytest.raises(ValueError, match="unsupported event bus URL"):
        open_event_bus("amqp://localhost")


async def test_event_triggers_over_every_bus_start_a_task_once(
    bus: EventBus, system: System
) -> None:
    """The scheduler's consumer path (router + acknowledge) over Redis Streams and Kafka too:
    a redelivered event starts nothing twice, another team's event starts nothing."""
    from linqra.scheduling.triggers import EventRouter, publish_team_event, team_topic

    agents = system.agents
    agent = await agents.create_agent("acme", {"name": "listener"})
    name = topic()
    task = await agents.create_task("acme", agent["id"], {
        "name": "on order", "type": "DATA_PROCESSING", "config": {"expression": "n"},
        "triggers": [{"type": "EVENT_DRIVEN", "topic": name, "filter": {"kind": "paid"}}],
    })  # fmt: skip
    started: list[str] = []

    async def dispatch(team: str, agent_id: str, tx_id: str, priority: int) -> None:
        started.append(tx_id)

    router = EventRouter(agents, dispatch)
    first = await bus.subscribe(team_topic("acme", name), "linqra-triggers", "s1")
    await publish_team_event(bus, "acme", name, {"kind": "paid", "n": 1}, idempotency_key="e1")
    await publish_team_event(bus, "acme", name, {"kind": "refund", "n": 2})
    await publish_team_event(bus, "other-team", name, {"kind": "paid", "n": 3})  # its own topic
    got = await drain(first, 2)
    for delivery in got:
        await router.handle(delivery.event)  # handled, but the consumer dies before acking
    await first.close()
    await asyncio.sleep(REDELIVER + 0.2)
    second = await bus.subscribe(team_topic("acme", name), "linqra-triggers", "s2")
    again = await drain(second, 2, timeout=20)
    assert {d.event.payload["n"] for d in again} == {1, 2}  # delivered again…
    for delivery in again:
        await router.handle(delivery.event)
        await second.ack(delivery)
    await second.close()
    runs, total = await agents.list_task_executions("acme", task_id=task["id"])
    assert total == 1 and len(started) == 1  # …but the paid order started one run
    assert (
        runs[0]["input"] == {"kind": "paid", "n": 1}
        and runs[0]["trigger"]["type"] == "EVENT_DRIVEN"
    )
