"""``/v1/events`` and ``/v1/hooks`` in process: what a team publishes, or a signed webhook call
publishes for it, reaches the team's topic on the System's event bus with its headers; bad input
and bad signatures are refused naming the field. (Triggers starting tasks from these events on
the cluster's bus: ``tests/test_triggers.py``, on Ray.)"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from deployments.app import create_app
from linqra.events import EventBus
from linqra.events.base import Event
from linqra.scheduling.triggers import team_topic
from linqra.system import System

TEAM = {"X-Team-Id": "team-events"}


@pytest.fixture
async def client(system: System) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(system))
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=TEAM) as c:
        yield c


async def received(bus: EventBus, team: str, topic: str, count: int) -> list[Event]:
    """The first ``count`` events on the team's topic (a new group reads from the start)."""
    sub = await bus.subscribe(team_topic(team, topic), "test", "c1")
    events: list[Event] = []
    try:
        while len(events) < count:
            deliveries = await sub.fetch(count - len(events), timeout=5)
            assert deliveries, f"only {len(events)} of {count} events on {topic}"
            events += [d.event for d in deliveries]
    finally:
        await sub.close()
    return events


async def test_published_events_reach_the_teams_topic(
    client: httpx.AsyncClient, system: System
) -> None:
    first = await client.post(
        "/v1/events",
        json={"topic": "orders", "payload": {"kind": "paid"}, "idempotency_key": "o-1"},
    )
    assert first.status_code == 202, first.text
    assert first.json()["topic"] == "orders" and first.json()["id"] and first.json()["published_at"]
    other = await client.post(
        "/v1/events",
        json={"topic": "orders", "payload": {"kind": "paid"}},
        headers={"X-Team-Id": "team-events-other"},
    )
    assert other.status_code == 202
    (event,) = await received(system.bus(), "team-events", "orders", 1)
    assert event.id == first.json()["id"] and event.payload == {"kind": "paid"}
    assert event.idempotency_key == "o-1"
    assert event.headers == {"team_id": "team-events", "topic": "orders", "source": "api"}
    bad = await client.post("/v1/events", json={"topic": "bad topic", "payload": {}})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "topic"
    big = await client.post("/v1/events", json={"topic": "orders", "payload": {"x": "y" * 300_000}})
    assert big.status_code == 413 and big.json()["error"]["field"] == "payload"
    extra = await client.post("/v1/events", json={"topic": "orders", "bogus": 1})
    assert extra.status_code == 400 and extra.json()["error"]["field"] == "bogus"


async def test_signed_webhook_calls_publish_for_the_hooks_team(
    client: httpx.AsyncClient, system: System
) -> None:
    created = await client.post("/v1/hooks", json={"topic": "git.push", "description": "ci"})
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"] and hook["url"] == f"/v1/hooks/{hook['id']}"
    listed = (await client.get("/v1/hooks")).json()
    assert listed["total"] == 1 and "secret" not in listed["items"][0]
    assert "url" not in listed["items"][0]
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    signature = "sha256=" + hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
    anyone = {"X-Team-Id": ""}  # no team: the hook knows its team
    wrong = await client.post(
        hook["url"], content=body, headers={**anyone, "X-Linqra-Signature": "sha256=00"}
    )
    missing = await client.post(hook["url"], content=body, headers=anyone)
    assert wrong.status_code == missing.status_code == 401
    assert wrong.json()["error"]["field"] == "X-Linqra-Signature"
    ok = await client.post(
        hook["url"], content=body, headers={**anyone, "X-Linqra-Signature": signature}
    )
    assert ok.status_code == 202, ok.text
    unknown = await client.post(
        "/v1/hooks/hk_nope", content=body, headers={**anyone, "X-Linqra-Signature": signature}
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "hook_id"
    (event,) = await received(system.bus(), "team-events", "git.push", 1)
    assert event.id == ok.json()["id"] and event.payload == {"ref": "refs/heads/main"}
    assert event.headers["source"] == "webhook"
    counted = (await client.get("/v1/hooks")).json()["items"][0]
    assert counted["rejected"] == 2 and counted["accepted"] == 1
    other = await client.get("/v1/hooks", headers={"X-Team-Id": "team-events-other"})
    assert other.json()["total"] == 0
    assert (await client.delete(f"/v1/hooks/{hook['id']}")).status_code == 204
    assert (await client.delete(f"/v1/hooks/{hook['id']}")).status_code == 404
    gone = await client.post(
        hook["url"], content=body, headers={**anyone, "X-Linqra-Signature": signature}
    )
    assert gone.status_code == 404
