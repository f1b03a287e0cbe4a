"""``/v1/dead-letters`` in process: the app's routes over a System whose event bus the test
consumes from (a consumer that keeps failing buries events as the team's dead letters)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from deployments.app import create_app
from linqra.events import DeadLetters, EventBus, GuardedConsumer, RedeliveryPolicy
from linqra.events.base import Event
from linqra.scheduling.triggers import publish_team_event, team_topic
from linqra.system import System


@pytest.fixture
def bus(system: System) -> EventBus:
    return system.bus()  # the one the app's replay publishes on (closed with the system)


@pytest.fixture
async def client(system: System) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(system))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_a_team_lists_reads_replays_and_deletes_its_dead_letters(
    client: httpx.AsyncClient, system: System, bus: EventBus
) -> None:
    sub = await bus.subscribe(team_topic("acme", "orders"), "g", "c1")
    handled: list[Any] = []
    failing = True

    async def handle(event: Event) -> None:
        if failing:
            raise ValueError("no such customer")
        handled.append(event.payload)

    consumer = GuardedConsumer(
        sub,
        handle,
        DeadLetters(system.store),
        group="g",
        policy=RedeliveryPolicy(max_deliveries=2, retry_seconds=0.01),
    )
    for n in (1, 2):
        await publish_team_event(bus, "acme", "orders", {"n": n})
    while consumer.dead < 2:
        await consumer.poll(10, 0.1)
    acme = {"X-Team-Id": "acme"}
    listed = (await client.get("/v1/dead-letters", headers=acme, params={"limit": 1})).json()
    assert listed["total"] == 2 and len(listed["items"]) == 1 and listed["next_offset"] == 1
    page = (await client.get("/v1/dead-letters", headers=acme)).json()["items"]
    first = next(i for i in page if json.loads(i["payload_json"]) == {"n": 1})
    assert first["attempts"] == 2 and first["last_error"] == "ValueError: no such customer"
    assert first["topic"] == "orders"
    # another team sees none of it
    other = {"X-Team-Id": "someone-else"}
    assert (await client.get("/v1/dead-letters", headers=other)).json()["total"] == 0
    for call in (
        client.get(f"/v1/dead-letters/{first['id']}", headers=other),
        client.delete(f"/v1/dead-letters/{first['id']}", headers=other),
        client.post(f"/v1/dead-letters/{first['id']}/replay", headers=other),
    ):
        response = await call
        assert response.status_code == 404 and response.json()["error"]["field"] == "dead_letter_id"
    assert (await client.get("/v1/dead-letters")).status_code == 401
    assert (
        await client.get("/v1/dead-letters", headers=acme, params={"limit": 0})
    ).status_code == 400
    # replay: published again, handled now that the handler works, and the dead letter is gone
    failing = False
    replayed = await client.post(f"/v1/dead-letters/{first['id']}/replay", headers=acme)
    assert replayed.status_code == 202 and replayed.json()["topic"] == "orders"
    while not handled:
        await consumer.poll(10, 0.1)
    assert handled == [{"n": 1}]
    assert (await client.get(f"/v1/dead-letters/{first['id']}", headers=acme)).status_code == 404
    second = next(i for i in page if i["id"] != first["id"])
    assert (
        await client.delete(f"/v1/dead-letters/{second['id']}", headers=acme)
    ).status_code == 204
    assert (await client.get("/v1/dead-letters", headers=acme)).json()["total"] == 0
    await sub.close()
