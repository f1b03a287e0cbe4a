"""``/v1/events`` and ``/v1/hooks`` in process: what a team publishes, or a signed webhook call
publishes for it, reaches the team's topic on the System's event bus with its headers; bad input
and bad signatures are refused naming the field; a webhook call signed too long ago (or ahead),
or sent a second time, is refused, also across two gateways sharing one Redis. (Triggers
starting tasks from these events on the cluster's bus: ``tests/test_triggers.py``, on Ray.)"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Mapping

import httpx
import pytest

from deployments.app import create_app
from linqra.cache.redis import RedisCache
from linqra.errors import Unauthenticated
from linqra.events import EventBus
from linqra.events.base import Event
from linqra.scheduling.hooks import HOOKS, HookService
from linqra.scheduling.triggers import team_topic
from linqra.system import System

TEAM = {"X-Team-Id": "team-events"}
ANYONE = {"X-Team-Id": ""}  # a webhook's caller sends no team: the hook knows its team


def signed(secret: str, body: bytes, at: float | None = None) -> dict[str, str]:
    """The headers of a delivery signed as the docs say (written out here, not imported)."""
    timestamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return {"X-Linqra-Timestamp": timestamp, "X-Linqra-Signature": f"v1={digest.hexdigest()}"}


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
    headers = {**ANYONE, **signed(hook["secret"], body)}
    wrong = await client.post(
        hook["url"], content=body, headers={**headers, "X-Linqra-Signature": "v1=00"}
    )
    missing = await client.post(hook["url"], content=body, headers=ANYONE)
    assert wrong.status_code == missing.status_code == 401
    assert wrong.json()["error"]["field"] == "X-Linqra-Signature"
    assert missing.json()["error"]["field"] == "X-Linqra-Timestamp"
    ok = await client.post(hook["url"], content=body, headers=headers)
    assert ok.status_code == 202, ok.text
    unknown = await client.post("/v1/hooks/hk_nope", content=body, headers=headers)
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
    gone = await client.post(hook["url"], content=body, headers=headers)
    assert gone.status_code == 404


async def test_a_webhook_call_is_refused_when_stale_ahead_replayed_or_signed_the_old_way(
    client: httpx.AsyncClient, system: System
) -> None:
    hook = (await client.post("/v1/hooks", json={"topic": "deploys"})).json()
    secret, url = hook["secret"], hook["url"]
    body = json.dumps({"env": "prod"}).encode()

    async def post(headers: Mapping[str, str | bytes], content: bytes = body) -> httpx.Response:
        raw = [  # as bytes: a client may send any Latin-1 text
            (k.encode(), v if isinstance(v, bytes) else v.encode("latin-1"))
            for k, v in {**ANYONE, **headers}.items()
        ]
        return await client.post(url, content=content, headers=raw)

    def refused(response: httpx.Response, field: str, words: str) -> None:
        assert response.status_code == 401, response.text
        error = response.json()["error"]
        assert error["field"] == field and words in error["message"], error
        assert secret not in response.text

    first = signed(secret, body)
    assert (await post(first)).status_code == 202
    refused(await post(first), "X-Linqra-Signature", "already used")
    # the idempotency key is not signed: changing it does not make a captured call new
    refused(await post({**first, "X-Idempotency-Key": "fresh"}), "X-Linqra-Signature", "already")
    now = time.time()
    refused(await post(signed(secret, body, now - 400)), "X-Linqra-Timestamp", "s old")
    refused(await post(signed(secret, body, now + 400)), "X-Linqra-Timestamp", "ahead")
    # a timestamp moved without re-signing breaks the signature
    moved = {**signed(secret, body, now - 1), "X-Linqra-Timestamp": str(int(now))}
    refused(await post(moved), "X-Linqra-Signature", "wrong")
    for stamp in ("", "12abc", "1.5", "-5", "²³".encode("latin-1"), "9" * 40):
        refused(await post({**first, "X-Linqra-Timestamp": stamp}), "X-Linqra-Timestamp", "unix")
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()  # the old scheme
    refused(
        await post({**first, "X-Linqra-Signature": f"sha256={digest}"}),
        "X-Linqra-Signature",
        "wrong",
    )
    # inside the tolerance, in the past or ahead (clocks differ a little), a call is fine
    assert (await post(signed(secret, body, now - 200))).status_code == 202
    assert (
        await post(signed(secret, b'{"env": "dev"}', now + 200), b'{"env": "dev"}')
    ).status_code == 202
    # a signed call that fails after it was verified may be delivered again (and fails again)
    not_json = b"{nope"
    for _ in range(2):
        bad = await post(signed(secret, not_json, now), not_json)
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "body"
    counted = (await client.get("/v1/hooks")).json()["items"]
    (mine,) = [h for h in counted if h["id"] == hook["id"]]
    assert mine["accepted"] == 3 and mine["rejected"] == 12
    events = await received(system.bus(), "team-events", "deploys", 3)
    assert [e.payload["env"] for e in events] == ["prod", "prod", "dev"]
    stored = await system.store.get(HOOKS, "team-events", hook["id"])
    assert stored is not None and "secret" not in stored and secret not in json.dumps(stored)
    assert stored["secret_sealed"]["v"] >= 1


async def test_the_tolerance_is_inclusive_and_a_signature_is_remembered_long_enough(
    system: System,
) -> None:
    now = 1_900_000_000.0
    hooks = HookService(
        system.store, system.hooks.keyring, system.cache, tolerance_seconds=300, clock=lambda: now
    )
    hook = await hooks.create("team-events", "edges")
    body = b"{}"
    for at in (now - 300, now + 300):
        headers = signed(hook["secret"], body, at)
        await hooks.verify(
            hook["id"], body, headers["X-Linqra-Signature"], headers["X-Linqra-Timestamp"]
        )
    for at in (now - 301, now + 301):
        headers = signed(hook["secret"], body, at)
        with pytest.raises(Unauthenticated):
            await hooks.verify(
                hook["id"], body, headers["X-Linqra-Signature"], headers["X-Linqra-Timestamp"]
            )


async def test_a_call_taken_by_one_gateway_is_refused_by_another_sharing_redis(
    system: System, redis_url: str
) -> None:
    """Two gateway replicas (two HookServices, each with its own Redis connection, one store):
    a signature accepted by one is a replay for the other."""
    caches = [RedisCache(redis_url), RedisCache(redis_url)]
    try:
        one, two = (HookService(system.store, system.hooks.keyring, c) for c in caches)
        hook = await one.create("team-events", "replicas")
        body = b'{"n": 1}'
        headers = signed(hook["secret"], body)
        sig, stamp = headers["X-Linqra-Signature"], headers["X-Linqra-Timestamp"]
        await one.verify(hook["id"], body, sig, stamp)
        with pytest.raises(Unauthenticated, match="already used"):
            await two.verify(hook["id"], body, sig, stamp)
        other = signed(hook["secret"], b'{"n": 2}')
        await two.verify(
            hook["id"], b'{"n": 2}', other["X-Linqra-Signature"], other["X-Linqra-Timestamp"]
        )
    finally:
        for cache in caches:
            await cache.close()
