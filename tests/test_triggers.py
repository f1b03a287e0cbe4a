"""Event-driven triggers and signed webhooks through the gateway, on the cluster's event bus."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.ray


@pytest.fixture
def api(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=gateway_url, headers={"X-Team-Id": "team-events"}, timeout=60
    ) as client:
        yield client


def executions(api: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    return api.get("/v1/task-executions", params={"task_id": task_id, "limit": 100}).json()["items"]


def until(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError(f"not true within {timeout}s")


def test_events_start_matching_tasks_once_and_only_in_their_team(
    api: httpx.Client, gateway_url: str
) -> None:
    agent = api.post("/v1/agents", json={"name": "orders"}).json()
    task = api.post(f"/v1/agents/{agent['id']}/tasks", json={
        "name": "on paid order", "type": "DATA_PROCESSING", "config": {"expression": "order.total"},
        "triggers": [{"type": "EVENT_DRIVEN", "topic": "orders", "filter": {"kind": "paid"}}]}).json()  # fmt: skip
    assert task["event_triggers"][0]["active"]
    api.post(
        "/v1/events",
        json={
            "topic": "orders",
            "payload": {"kind": "paid", "order": {"total": 42}},
            "idempotency_key": "o-1",
        },
    )
    api.post(
        "/v1/events",
        json={
            "topic": "orders",
            "payload": {"kind": "paid", "order": {"total": 42}},
            "idempotency_key": "o-1",
        },
    )
    api.post(
        "/v1/events", json={"topic": "orders", "payload": {"kind": "refund", "order": {"total": 7}}}
    )
    with httpx.Client(base_url=gateway_url, headers={"X-Team-Id": "team-events-other"}) as other:
        assert (
            other.post(
                "/v1/events",
                json={"topic": "orders", "payload": {"kind": "paid", "order": {"total": 1}}},
            ).status_code
            == 202
        )
    done = until(lambda: [e for e in executions(api, task["id"]) if e["status"] == "COMPLETED"])
    time.sleep(2.0)  # give a duplicate or a foreign event the time to show up, if it were to
    runs = executions(api, task["id"])
    assert len(runs) == 1 and done[0]["result"] == 42
    assert runs[0]["trigger"]["type"] == "EVENT_DRIVEN" and runs[0]["input"]["order"] == {
        "total": 42
    }
    bad = api.post("/v1/events", json={"topic": "bad topic", "payload": {}})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "topic"
    big = api.post("/v1/events", json={"topic": "orders", "payload": {"x": "y" * 300_000}})
    assert big.status_code == 413


def test_signed_webhooks_publish_and_bad_signatures_are_refused(
    api: httpx.Client, gateway_url: str
) -> None:
    agent = api.post("/v1/agents", json={"name": "hooks"}).json()
    task = api.post(f"/v1/agents/{agent['id']}/tasks", json={
        "name": "on push", "type": "DATA_PROCESSING", "config": {"expression": "ref"},
        "triggers": [{"type": "EVENT_DRIVEN", "topic": "git.push"}]}).json()  # fmt: skip
    hook = api.post("/v1/hooks", json={"topic": "git.push"}).json()
    assert hook["secret"] and "secret" not in api.get("/v1/hooks").json()["items"][0]
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(hook["secret"].encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    signed = {"X-Linqra-Timestamp": stamp, "X-Linqra-Signature": f"v1={digest.hexdigest()}"}
    with httpx.Client(base_url=gateway_url) as anyone:  # no team header: the hook knows its team
        wrong = anyone.post(
            hook["url"], content=body, headers={**signed, "X-Linqra-Signature": "v1=00"}
        )
        missing = anyone.post(hook["url"], content=body)
        assert wrong.status_code == missing.status_code == 401
        assert wrong.json()["error"]["field"] == "X-Linqra-Signature"
        ok = anyone.post(hook["url"], content=body, headers=signed)
        assert ok.status_code == 202, ok.text
        assert anyone.post("/v1/hooks/hk_nope", content=body, headers=signed).status_code == 404
    done = until(lambda: [e for e in executions(api, task["id"]) if e["status"] == "COMPLETED"])
    assert done[0]["result"] == "refs/heads/main" and len(executions(api, task["id"])) == 1
    listed = api.get("/v1/hooks").json()["items"][0]
    assert listed["rejected"] == 2 and listed["accepted"] == 1


def test_a_poison_event_on_the_cluster_becomes_a_dead_letter_of_its_team(
    api: httpx.Client, ray_settings: Any
) -> None:
    """An event the scheduler cannot handle (a NaN total the store cannot hold, published on the
    cluster bus behind the gateway's back) is tried agents.max_event_deliveries times, then
    dead-lettered and acknowledged; the good event behind it still starts its task. It used to
    come back every 30 s forever."""
    import asyncio
    import math

    from actors.events import open_bus
    from linqra.events import DeadLetters
    from linqra.scheduling.triggers import publish_team_event
    from linqra.system import System

    agent = api.post("/v1/agents", json={"name": "poisoned"}).json()
    task = api.post(f"/v1/agents/{agent['id']}/tasks", json={
        "name": "on total", "type": "DATA_PROCESSING", "config": {"expression": "total"},
        "triggers": [{"type": "EVENT_DRIVEN", "topic": "totals"}]}).json()  # fmt: skip
    bus = open_bus(ray_settings)
    poison = asyncio.run(publish_team_event(bus, "team-events", "totals", {"total": math.nan}))
    api.post("/v1/events", json={"topic": "totals", "payload": {"total": 7}})

    async def dead_letters(team: str) -> list[dict[str, Any]]:
        system = await System.open(ray_settings, init=False)
        try:
            return (await DeadLetters(system.store).list_dead_letters(team))[0]
        finally:
            await system.close()

    [letter] = until(lambda: asyncio.run(dead_letters("team-events")), timeout=90)
    assert letter["event_id"] == poison.id and letter["topic"] == "totals"
    assert letter["attempts"] == ray_settings.agents.max_event_deliveries == 5
    assert letter["payload_json"] == '{"total": NaN}'
    done = until(lambda: [e for e in executions(api, task["id"]) if e["status"] == "COMPLETED"])
    assert [e["result"] for e in done] == [7]
    assert asyncio.run(dead_letters("team-events-other")) == []
