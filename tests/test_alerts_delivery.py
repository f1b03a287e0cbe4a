"""Alert notifications to a real local HTTP receiver: the webhook's signature (checked here with
hmac, not with Linqra's code), its timestamp against replays, the secret kept out of every record;
a failing channel recorded, retried with backoff and given up; a hanging one blocking nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from linqra._config_alerts import AlertSettings
from linqra.alerts import AlertEvaluator, AlertRules, rules_of, verify
from linqra.alerts.rules import ALERT_DELIVERIES, ALERT_EVENTS, ALERT_RULES, ALERT_STATES
from linqra.clock import iso, parse_iso, utcnow
from linqra.config import Settings
from linqra.system import System
from tests.support.receiver import Receiver

TEAM = "team-a"
SECRET = "whsec-7f3a9c1e5b2d4f6a8c0e"
ALWAYS = {"signal": "queue_backlog", "comparison": ">=", "threshold": 0}  # fires at once


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        alerts=AlertSettings(
            delivery_timeout_seconds=0.5, retry_seconds=5, max_retry_seconds=60,
            max_delivery_attempts=4,
        ),
    )  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
async def alerts(system: System) -> AsyncIterator[tuple[AlertRules, AlertEvaluator]]:
    rules = rules_of(system)
    await rules.secrets.put(TEAM, "ops-hook", SECRET)
    evaluator = AlertEvaluator.of(system)
    yield rules, evaluator
    await evaluator.close()


def _webhook(url: str) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "secret": "ops-hook"}


async def test_a_webhook_call_is_signed_over_its_timestamp_and_body_with_the_named_secret(
    system: System, alerts: tuple[AlertRules, AlertEvaluator], receiver: Receiver
) -> None:
    rules, evaluator = alerts
    rule = await rules.create(TEAM, {**ALWAYS, "name": "backlog", "labels": {"team_owner": "ops"},
                                     "channels": [_webhook(f"{receiver.url}/hook")]})  # fmt: skip
    report = await evaluator.tick()
    assert (report.fired, report.delivered, report.failed) == (1, 1, 0)
    [call] = receiver.received("/hook")
    stamp = call.headers["x-linqra-timestamp"]
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + call.body, hashlib.sha256)
    assert call.headers["x-linqra-signature"] == f"v1={expected.hexdigest()}"
    assert abs(time.time() - int(stamp)) < 30  # signed when sent
    assert call.headers["x-linqra-event"] == "alert.firing"
    payload = json.loads(call.body)
    assert (payload["type"], payload["team_id"]) == ("alert.firing", TEAM)
    assert payload["delivery_id"] == call.headers["x-linqra-delivery"]
    alert = payload["alert"]
    assert (alert["rule_id"], alert["status"], alert["value"]) == (rule.id, "firing", 0)
    assert alert["labels"] == {"team_owner": "ops"} and "backlog" in alert["summary"]
    # what a receiver checks: the signature, and a timestamp within its tolerance
    assert verify(SECRET, call.headers, call.body, now=int(stamp) + 10)
    assert not verify(SECRET, call.headers, call.body, now=int(stamp) + 600)  # a replay, later
    assert not verify("another-secret", call.headers, call.body, now=int(stamp))
    assert not verify(SECRET, call.headers, call.body + b" ", now=int(stamp))  # altered body

    [delivery] = (await rules.deliveries(TEAM, rule.id))[0]
    assert (delivery["status"], delivery["attempts"], delivery["response_status"]) == (
        "delivered", 1, 200)  # fmt: skip
    # the secret's value is nowhere but sealed in team_secrets
    for collection in (ALERT_RULES, ALERT_STATES, ALERT_EVENTS, ALERT_DELIVERIES):
        assert SECRET not in json.dumps(await system.store.find(collection, TEAM, limit=100))
    assert SECRET not in call.body.decode()
    listed = await system.secrets.list(TEAM)  # among the team's secrets, masked
    assert [(s.provider, s.last4) for s in listed] == [("alert:ops-hook", SECRET[-4:])]


async def test_a_failing_channel_is_retried_with_backoff_and_a_hanging_one_blocks_nothing(
    system: System, alerts: tuple[AlertRules, AlertEvaluator], receiver: Receiver
) -> None:
    rules, evaluator = alerts
    bus = system.bus()
    subscription = await bus.subscribe("linqra.team-a.ops", "test", "t1")
    with Receiver() as stuck:
        stuck.hang = 5  # ten times the delivery timeout
        flaky = await rules.create(
            TEAM, {**ALWAYS, "name": "flaky", "channels": [_webhook(f"{receiver.url}/flaky")]}
        )
        hung = await rules.create(
            TEAM, {**ALWAYS, "name": "hung", "channels": [_webhook(f"{stuck.url}/hung")]}
        )
        evented = await rules.create(
            TEAM, {**ALWAYS, "name": "evented", "channels": [{"type": "event", "topic": "ops"}]}
        )
        receiver.fail(2)
        t0 = utcnow()
        started = time.monotonic()
        report = await evaluator.tick(t0)
        took = time.monotonic() - started
    assert (report.evaluated, report.fired, report.delivered, report.failed) == (3, 3, 1, 2)
    assert took < 3, f"a tick with a hanging channel took {took:.1f} s"  # bounded by the timeout
    [event] = await subscription.fetch(10, 1.0)
    assert event.event.payload["alert"]["rule_id"] == evented.id
    [timed_out] = (await rules.deliveries(TEAM, hung.id))[0]
    assert (timed_out["status"], timed_out["last_error"]) == ("retrying", "timed out")

    async def state() -> dict[str, Any]:
        [d] = (await rules.deliveries(TEAM, flaky.id))[0]
        return d

    first = await state()
    assert (first["status"], first["attempts"], first["response_status"]) == ("retrying", 1, 500)
    assert first["last_error"].startswith("HTTP 500")
    assert parse_iso(first["next_attempt_at"]) == t0 + timedelta(seconds=5)
    await evaluator.tick(t0 + timedelta(seconds=1))  # not due yet: no call
    assert len(receiver.received("/flaky")) == 1
    await evaluator.tick(t0 + timedelta(seconds=5))  # second attempt: 500 again, backoff doubles
    second = await state()
    assert (second["attempts"], second["status"]) == (2, "retrying")
    assert second["next_attempt_at"] == iso(t0 + timedelta(seconds=15))
    await evaluator.tick(t0 + timedelta(seconds=15))
    third = await state()
    assert (third["attempts"], third["status"], third["last_error"]) == (3, "delivered", None)
    calls = receiver.received("/flaky")
    assert [c.status for c in calls] == [500, 500, 200]
    assert len({c.headers["x-linqra-delivery"] for c in calls}) == 1  # one delivery, 3 attempts
    assert len({c.headers["x-linqra-signature"] for c in calls}) == 3  # each signed anew

    # the hanging channel, tried at each due tick until max_delivery_attempts: then failed
    for seconds in (5, 15, 35, 75):
        await evaluator.tick(t0 + timedelta(seconds=seconds))
    [given_up] = (await rules.deliveries(TEAM, hung.id))[0]
    assert (given_up["status"], given_up["attempts"], given_up["next_attempt_at"]) == (
        "failed", 4, None)  # fmt: skip
    assert len(await rules.firing(TEAM)) == 3  # the rules went on being evaluated
    await subscription.close()


async def test_an_undelivered_firing_is_superseded_by_the_resolved_that_follows(
    system: System, alerts: tuple[AlertRules, AlertEvaluator], receiver: Receiver
) -> None:
    rules, evaluator = alerts
    body = {**ALWAYS, "name": "flip", "channels": [_webhook(f"{receiver.url}/flip")]}
    rule = await rules.create(TEAM, body)
    receiver.fail(1)
    t0 = utcnow()
    await evaluator.tick(t0)  # firing: its call fails
    await rules.update(TEAM, rule.id, {**body, "threshold": 1_000})
    await evaluator.tick(t0 + timedelta(seconds=10))  # resolved before the retry was due
    deliveries = {d["kind"]: d for d in (await rules.deliveries(TEAM, rule.id))[0]}
    assert deliveries["firing"]["status"] == "superseded"
    assert deliveries["resolved"]["status"] == "delivered"
    events = [json.loads(c.body)["type"] for c in receiver.received("/flip")]
    assert events == ["alert.firing", "alert.resolved"]  # the failed try, then the resolved


async def test_an_address_the_egress_policy_refuses_fails_the_delivery_not_the_tick(
    system: System, alerts: tuple[AlertRules, AlertEvaluator], receiver: Receiver
) -> None:
    rules, evaluator = alerts
    metadata = await rules.create(
        TEAM, {**ALWAYS, "name": "metadata", "channels": [_webhook("http://169.254.169.254/x")]}
    )
    report = await evaluator.tick()
    assert (report.fired, report.failed) == (1, 1)
    [refused] = (await rules.deliveries(TEAM, metadata.id))[0]
    assert "egress policy" in refused["last_error"] and "metadata" in refused["last_error"]
