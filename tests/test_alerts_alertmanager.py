"""A rule's alert through a real Alertmanager (Debian's ``prometheus-alertmanager``, not
clustered, on a free loopback port) to the webhook receiver it routes to, firing and then
resolved; waits are for conditions, with deadlines."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from linqra._config_alerts import AlertSettings
from linqra.alerts import AlertEvaluator, AlertRules, rules_of
from linqra.clock import new_id, utcnow
from linqra.config import Settings
from linqra.status import ExecutionStatus
from linqra.system import System
from linqra.workflows.records import EXECUTIONS
from tests.support.alertmanager import Alertmanager
from tests.support.receiver import Received, Receiver

TEAM = "team-a"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
def alertmanager(receiver: Receiver) -> Iterator[Alertmanager]:
    with Alertmanager(f"{receiver.url}/am") as am:
        yield am


@pytest.fixture
def settings(tmp_path: Path, alertmanager: Alertmanager) -> Settings:
    return Settings(
        data_dir=tmp_path,
        alerts=AlertSettings(
            alertmanager_url=alertmanager.url, external_url="https://linqra.example.com",
            resend_seconds=1,
        ),
    )  # fmt: skip


@pytest.fixture
async def alerts(system: System) -> AsyncIterator[tuple[AlertRules, AlertEvaluator]]:
    evaluator = AlertEvaluator.of(system)
    yield rules_of(system), evaluator
    await evaluator.close()


def _notifications(calls: list[Received], rule_id: str, status: str) -> list[dict[str, Any]]:
    found = []
    for call in calls:
        body = json.loads(call.body)
        if body["status"] == status and body["commonLabels"].get("rule_id") == rule_id:
            found.append(body)
    return found


async def test_a_fired_rule_reaches_the_receiver_through_alertmanager_and_resolves(
    system: System,
    alerts: tuple[AlertRules, AlertEvaluator],
    alertmanager: Alertmanager,
    receiver: Receiver,
) -> None:
    rules, evaluator = alerts
    rule = await rules.create(TEAM, {
        "name": "ExecutionsPiling", "signal": "queue_backlog", "comparison": ">=",
        "threshold": 1, "severity": "critical", "labels": {"service": "linqra"},
        "description": "executions wait for a runner", "channels": [{"type": "alertmanager"}],
    })  # fmt: skip
    ex = await system.workflows.executions.create(TEAM, {"id": new_id("ex"), "workflow_id": "w"})
    report = await evaluator.tick(utcnow())
    assert (report.fired, report.delivered, report.failed) == (1, 1, 0)

    [firing] = receiver.wait(
        lambda calls: _notifications(calls, rule.id, "firing"), "the firing notification", 30
    )
    [alert] = firing["alerts"]
    assert alert["labels"] == {
        "alertname": "ExecutionsPiling", "team": TEAM, "rule_id": rule.id,
        "severity": "critical", "signal": "queue_backlog", "service": "linqra",
    }  # fmt: skip
    assert alert["annotations"]["description"] == "executions wait for a runner"
    assert alert["annotations"]["value"] == "1" and alert["annotations"]["threshold"] == ">= 1.0"
    assert alert["generatorURL"] == f"https://linqra.example.com/v1/alerts/rules/{rule.id}"
    [held] = [a for a in alertmanager.alerts() if a["labels"].get("rule_id") == rule.id]
    assert held["status"]["state"] == "active"

    # still firing a resend interval later: posted again (a refresh), nothing new notified
    await evaluator.tick(utcnow() + timedelta(seconds=2))
    kinds = sorted(d["kind"] for d in (await rules.deliveries(TEAM, rule.id))[0])
    assert kinds == ["firing", "refresh"]

    await system.store.update(EXECUTIONS, TEAM, ex["id"], {"status": ExecutionStatus.CANCELLED})
    report = await evaluator.tick(utcnow())
    assert (report.resolved, report.delivered) == (1, 1)
    [resolved] = receiver.wait(
        lambda calls: _notifications(calls, rule.id, "resolved"), "the resolved notification", 30
    )
    [ended] = resolved["alerts"]
    assert ended["status"] == "resolved" and ended["startsAt"].startswith(alert["startsAt"][:19])
    history = [e["kind"] for e in (await rules.history(TEAM, rule.id))[0]]
    assert history == ["resolved", "firing"]
