"""Handling events on every bus adapter: in-process, Redis Streams (real redis-server), Kafka
(aiokafka against a real tansu broker). The bus contract itself (delivery, groups, order,
redelivery and its attempt count, refusals) is ``tests/contracts/test_event_bus.py``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

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
    task = await agents.create_task("acme", agent.id, {
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
    runs, total = await agents.list_task_executions("acme", task_id=task.id)
    assert total == 1 and len(started) == 1  # …but the paid order started one run
    assert (
        runs[0]["input"] == {"kind": "paid", "n": 1}
        and runs[0]["trigger"]["type"] == "EVENT_DRIVEN"
    )
