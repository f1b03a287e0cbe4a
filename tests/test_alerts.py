"""Alert rules in the core, through a real System (SQLite and MongoDB stores, in-process event bus): the state
machine with instants the test chooses (no sleeps), signals computed from what Linqra records,
history, and the event channel. Webhooks and retries: ``test_alerts_delivery.py``; Alertmanager:
``test_alerts_alertmanager.py``; the HTTP API: ``test_alerts_api.py``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from linqra._config_alerts import AlertSettings
from linqra.alerts import AlertEvaluator, AlertRules, rules_of
from linqra.alerts.rules import ALERT_STATES
from linqra.alerts.state import advance
from linqra.clock import iso, new_id, utcnow
from linqra.config import Settings
from linqra.llm.pricing import Cost
from linqra.llm.types import Usage
from linqra.llm.usage import UsageRepository
from linqra.status import ExecutionStatus
from linqra.system import System
from linqra.workflows.records import EXECUTIONS

TEAM, OTHER = "team-a", "team-b"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, alerts=AlertSettings(delivery_timeout_seconds=2))


@pytest.fixture(params=["sqlite", "mongo"])
async def system(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[System]:
    """The same tests on SQLite and on a MongoDB server (SecantusDB), each in its own database."""
    if request.param == "mongo":
        url = request.getfixturevalue("mongo_url").rsplit("/", 1)[0]
        settings = settings.model_copy(update={"store_url": f"{url}/al{uuid.uuid4().hex[:10]}"})
    opened = await System.open(settings)
    yield opened
    await opened.close()


@pytest.fixture
async def alerts(system: System) -> AsyncIterator[tuple[AlertRules, AlertEvaluator]]:
    evaluator = AlertEvaluator.of(system)
    yield rules_of(system), evaluator
    await evaluator.close()


async def _pending(system: System, team: str, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        ex = await system.workflows.executions.create(
            team, {"id": new_id("ex"), "workflow_id": "wf_none"}
        )
        ids.append(ex["id"])
    return ids


async def _cancel(system: System, team: str, ids: list[str]) -> None:
    for ex in ids:
        await system.store.update(EXECUTIONS, team, ex, {"status": ExecutionStatus.CANCELLED})


# -- the state machine ------------------------------------------------------------------------
def test_a_condition_must_hold_for_for_and_stay_clear_for_keep_firing_for() -> None:
    t0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=utcnow().tzinfo)

    def at(seconds: int) -> datetime:
        return t0 + timedelta(seconds=seconds)

    timing = {"for_seconds": 60, "keep_firing_for_seconds": 120}
    state: dict[str, Any] | None = None
    seen = []
    for seconds, breach in [
        (0, True), (30, False),              # a blip: pending, then back to inactive
        (40, True), (70, True), (100, True),  # held 60 s from 40: fires at 100
        (130, False), (150, True),            # clear for 20 s only: still firing
        (160, False), (200, False),           # clear since 160: 40 s < 120
        (280, False),                         # 120 s clear: resolved
        (290, True),                          # pending again, not firing at once
    ]:  # fmt: skip
        moved = advance(state, breach, at(seconds), **timing)
        state = {k: getattr(moved, k) for k in ("state", "since", "pending_since",
                                                 "firing_since", "clear_since")}  # fmt: skip
        seen.append((seconds, moved.state, moved.transition))
    assert seen == [
        (0, "pending", None), (30, "inactive", None), (40, "pending", None),
        (70, "pending", None), (100, "firing", "firing"), (130, "firing", None),
        (150, "firing", None), (160, "firing", None), (200, "firing", None),
        (280, "inactive", "resolved"), (290, "pending", None),
    ]  # fmt: skip
    # for 0 and keep_firing_for 0: each evaluation decides alone
    assert advance(None, True, t0, for_seconds=0, keep_firing_for_seconds=0).transition == "firing"
    firing = {"state": "firing", "since": iso(t0), "firing_since": iso(t0)}
    moved = advance(firing, False, t0, for_seconds=0, keep_firing_for_seconds=0)
    assert (moved.state, moved.transition) == ("inactive", "resolved")


async def test_a_backlog_rule_goes_pending_firing_and_resolved_without_flapping(
    system: System, alerts: tuple[AlertRules, AlertEvaluator]
) -> None:
    rules, evaluator = alerts
    bus = system.bus()
    subscription = await bus.subscribe("linqra.team-a.ops-alerts", "test", "t1")
    rule = await rules.create(TEAM, {
        "name": "executions piling up", "signal": "queue_backlog",
        "params": {"queue": "executions"}, "comparison": ">=", "threshold": 3,
        "for": "1m", "keep_firing_for": "2m", "severity": "critical",
        "channels": [{"type": "event", "topic": "ops-alerts"}],
    })  # fmt: skip
    waiting = await _pending(system, TEAM, 3)
    await _pending(system, OTHER, 5)  # another team's backlog is not this team's
    t0 = utcnow()

    async def tick(seconds: int) -> str:
        await evaluator.tick(t0 + timedelta(seconds=seconds))
        return (await rules.get(TEAM, rule.id)).state.state  # type: ignore[union-attr]

    assert await tick(0) == "pending"
    assert await tick(30) == "pending"
    assert (await rules.firing(TEAM)) == []
    assert await tick(60) == "firing"
    [firing] = await rules.firing(TEAM)
    assert (firing.rule_id, firing.value, firing.severity) == (rule.id, 3.0, "critical")

    await _cancel(system, TEAM, waiting[:1])  # 2 waiting: clear, but keep_firing_for holds it
    assert await tick(90) == "firing"
    more = await _pending(system, TEAM, 1)  # back over: the clear period starts again
    assert await tick(100) == "firing"
    await _cancel(system, TEAM, waiting[1:] + more)
    assert await tick(120) == "firing"
    assert await tick(200) == "firing"  # clear for 80 s of 120
    assert await tick(240) == "inactive"

    history, total = await rules.history(TEAM, rule.id)
    assert total == 2 and [e["kind"] for e in history] == ["resolved", "firing"]
    resolved, fired = history
    assert fired["at"] == iso(t0 + timedelta(seconds=60)) and fired["value"] == 3.0
    assert resolved["at"] == iso(t0 + timedelta(seconds=240))
    assert resolved["started_at"] == fired["at"] and resolved["reason"] == "recovered"

    events = [d.event for d in await subscription.fetch(10, 2.0)]
    assert [e.payload["type"] for e in events] == ["alert.firing", "alert.resolved"]
    alert = events[0].payload["alert"]
    assert (alert["rule_id"], alert["team_id"], alert["status"]) == (rule.id, TEAM, "firing")
    assert events[1].payload["alert"]["resolved_at"] == resolved["at"]
    deliveries, _ = await rules.deliveries(TEAM, rule.id)
    assert {(d["kind"], d["status"], d["attempts"]) for d in deliveries} == {
        ("firing", "delivered", 1), ("resolved", "delivered", 1),
    }  # fmt: skip
    await subscription.close()


async def test_a_firing_rule_that_is_disabled_or_deleted_resolves_with_the_reason(
    system: System, alerts: tuple[AlertRules, AlertEvaluator]
) -> None:
    rules, evaluator = alerts
    body = {"name": "any backlog", "signal": "queue_backlog", "comparison": ">=",
            "threshold": 0}  # fmt: skip
    rule = await rules.create(TEAM, body)
    t0 = utcnow()
    await evaluator.tick(t0)
    assert [a.rule_id for a in await rules.firing(TEAM)] == [rule.id]

    await rules.update(TEAM, rule.id, {**body, "enabled": False})
    report = await evaluator.tick(t0 + timedelta(seconds=15))
    assert report.resolved == 1 and await rules.firing(TEAM) == []
    [resolved, _] = (await rules.history(TEAM, rule.id))[0]
    assert resolved["reason"] == "disabled"

    await rules.update(TEAM, rule.id, {**body, "enabled": True})
    await evaluator.tick(t0 + timedelta(seconds=30))
    assert len(await rules.firing(TEAM)) == 1
    await rules.delete(TEAM, rule.id)
    report = await evaluator.tick(t0 + timedelta(seconds=45))
    assert report.resolved == 1
    assert await system.store.get(ALERT_STATES, TEAM, rule.id) is None
    assert (await evaluator.tick(t0 + timedelta(seconds=60))).resolved == 0


# -- signals, from what Linqra records --------------------------------------------------------
async def test_failure_rate_spend_and_provider_errors_come_from_runs_and_usage_records(
    system: System, alerts: tuple[AlertRules, AlertEvaluator]
) -> None:
    rules, _ = alerts
    wf = await system.workflows.create(TEAM, {"name": "abs", "steps": [
        {"step": 1, "target": "transform",
         "params": {"expression": "abs(@)", "input": "{{params.x}}"}}]})  # fmt: skip
    runner = system.runner("alerts-test")
    for x in (1, -2, "nan?", 3):
        ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id, params={"x": x})
        await runner.submit(TEAM, ex["id"])
        await runner.wait(TEAM, ex["id"], 30)
    failing = await rules.create(TEAM, {
        "name": "abs fails", "signal": "execution_failure_rate",
        "params": {"workflow_id": wf.id}, "threshold": 0.2, "window": "1h"})  # fmt: skip
    dry = await rules.evaluate(TEAM, failing.id)
    assert (dry.value, dry.breach, dry.detail) == (0.25, True, {"finished": 4, "failed": 1})
    assert (dry.state, dry.next_state) == ("inactive", "firing")
    assert await system.store.get(ALERT_STATES, TEAM, failing.id) is None  # a dry run keeps nothing
    quiet = await rules.create(TEAM, {
        "name": "abs fails often", "signal": "execution_failure_rate",
        "params": {"workflow_id": wf.id, "min_runs": 5}, "threshold": 0.2})  # fmt: skip
    assert (await rules.evaluate(TEAM, quiet.id)).value is None  # too few runs: no data

    usage = UsageRepository(system.store)
    calls = [("openai", "gpt-4o", "0.25", "completed"), ("openai", "gpt-4o", "0.125", "failed"),
             ("anthropic", "claude", "1.5", "completed"), ("anthropic", "claude", None, "failed"),
             ("anthropic", "claude", "0.5", "failed")]  # fmt: skip
    for provider, model, amount, status in calls:
        cost = Cost(Decimal(amount), "USD", "2026-11", "standard") if amount else None
        await usage.record(TEAM, provider=provider, model=model, requested=model,
                           usage=Usage(input_tokens=10), cost=cost, latency_ms=5.0,
                           caller={"type": "test"}, status=status)  # fmt: skip
    await usage.record(OTHER, provider="openai", model="gpt-4o", requested="gpt-4o",
                       usage=Usage(), cost=Cost(Decimal(100), "USD", "v", "t"), latency_ms=1,
                       caller={}, status="failed")  # fmt: skip
    spend = await rules.create(TEAM, {"name": "spend", "signal": "team_spend", "threshold": 2})
    assert (await rules.evaluate(TEAM, spend.id)).exact == "2.375"
    gpt = await rules.create(TEAM, {"name": "gpt spend", "signal": "team_spend",
                                    "params": {"model": "gpt-4o"}, "threshold": 1})  # fmt: skip
    assert (await rules.evaluate(TEAM, gpt.id)).model_dump(include={"exact", "breach"}) == {
        "exact": "0.375", "breach": False}  # fmt: skip
    worst = await rules.create(TEAM, {"name": "providers", "signal": "provider_error_rate",
                                      "threshold": 0.5})  # fmt: skip
    answer = await rules.evaluate(TEAM, worst.id)
    assert answer.exact == "0.666667" and answer.detail["provider"] == "anthropic"
    openai = await rules.create(
        TEAM,
        {
            "name": "openai errors",
            "signal": "provider_error_rate",
            "params": {"provider": "openai"},
            "threshold": 0.5,
        },
    )
    assert (await rules.evaluate(TEAM, openai.id)).model_dump(include={"value", "breach"}) == {
        "value": 0.5, "breach": False}  # fmt: skip


async def test_backlog_age_and_missed_schedules_come_from_queues_and_the_scheduler(
    system: System, alerts: tuple[AlertRules, AlertEvaluator]
) -> None:
    from linqra.scheduling.scheduler import Scheduler, parse_instant

    rules, _ = alerts
    oldest = await rules.create(
        TEAM,
        {
            "name": "oldest waiting",
            "signal": "queue_backlog",
            "params": {"queue": "executions", "measure": "oldest_age_seconds"},
            "threshold": 60,
        },
    )
    assert (await rules.evaluate(TEAM, oldest.id)).value == 0
    [first] = await _pending(system, TEAM, 1)
    rules.clock = lambda: utcnow() + timedelta(seconds=90)
    aged = await rules.evaluate(TEAM, oldest.id)
    assert aged.breach and 90 <= (aged.value or 0) < 100 and aged.detail["oldest_id"] == first

    agent = await system.agents.create_agent(TEAM, {"name": "ops"})
    task = await system.agents.create_task(TEAM, agent.id, {
        "name": "every 10 s", "type": "DATA_PROCESSING", "config": {"expression": "@"},
        "triggers": [{"type": "CRON", "cron": "*/10 * * * * ?"}]})  # fmt: skip
    due = parse_instant(task.schedules[0].next_fire_at)
    overdue = await rules.create(TEAM, {
        "name": "scheduler behind", "signal": "schedules_missed",
        "params": {"measure": "overdue", "grace_seconds": 30}, "threshold": 0})  # fmt: skip
    late = await rules.create(TEAM, {"name": "late fires", "signal": "schedules_missed",
                                     "threshold": 0, "window": "1h"})  # fmt: skip
    rules.clock = lambda: due + timedelta(seconds=600)  # the scheduler was down for ten minutes
    assert (await rules.evaluate(TEAM, overdue.id)).model_dump(include={"value", "breach"}) == {
        "value": 1, "breach": True}  # fmt: skip
    assert (await rules.evaluate(TEAM, late.id)).value == 0

    async def dispatch(team: str, agent_id: str, tx_id: str, priority: int) -> None:
        return None

    scheduler = Scheduler(system.agents, system.settings.agents, dispatch)
    assert await scheduler.tick(due + timedelta(seconds=600)) == 1  # a misfire, fired once now
    assert (await rules.evaluate(TEAM, overdue.id)).value == 0
    rules.clock = utcnow
    fired = await rules.evaluate(TEAM, late.id)
    assert (fired.value, fired.breach, fired.detail) == (1, True, {"late_fires": 1})
