"""Metrics without Ray: the catalogue's conventions, the port's rules, what each layer records
(in memory, through a real System), and the ``prometheus_client`` exporter of ``metrics.port``."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from linqra.clock import iso, utcnow
from linqra.config import MetricsSettings, Settings
from linqra.errors import BudgetExceeded
from linqra.llm.budgets import to_nanos
from linqra.llm.types import Delta, Message, ModelSettings
from linqra.metrics import CATALOGUE, NOOP, Instrument, MemoryMetrics, catalogue
from linqra.metrics.prometheus import PrometheusMetrics
from linqra.system import System

ROOT = Path(__file__).resolve().parents[1]
C = catalogue
TEAM = "team-m"


# -- the catalogue and the port -----------------------------------------------------------
def test_every_instrument_follows_the_naming_conventions_and_is_recorded_somewhere() -> None:
    names = {i.name for i in CATALOGUE.values()}
    assert len(names) == len(CATALOGUE) and all(i.problem() is None for i in CATALOGUE.values())
    constants = {n for n, v in vars(C).items() if isinstance(v, Instrument)}
    assert {getattr(C, n).name for n in constants} == names  # nothing declared outside it
    used: set[str] = set()
    for package in ("linqra", "actors", "deployments"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "catalogue.py":
                continue
            tree = ast.parse(path.read_text())
            used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            used |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                     for a in n.names}  # fmt: skip
    assert constants - used == set(), "declared but never recorded"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("linqra_runs", "counter", "d", "1"), "end in _total"),
        (("linqra_runs_total", "gauge", "d", "1"), "end in _total"),
        (("runs_total", "counter", "d", "1"), "linqra_"),
        (("linqra_wait", "histogram", "d", "seconds", (), (1.0,)), "unit"),
        (("linqra_wait_seconds", "histogram", "d", "seconds", (), (2.0, 1.0)), "increasing"),
        (("linqra_runs_total", "counter", "d", "1", ("team",)), "team"),
        (("linqra_runs_total", "counter", "d", "1", ("le",)), "'le'"),
        (("linqra_runs_total", "counter", " ", "1"), "description"),
    ],
)
def test_an_instrument_that_breaks_a_convention_is_refused(
    args: tuple[Any, ...], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        Instrument(*args)


def test_team_is_a_label_only_where_the_setting_allows_it() -> None:
    off, on = MemoryMetrics(), MemoryMetrics(team_labels=True)
    for m in (off, on):
        m.add(C.EXECUTIONS, team="acme", status="COMPLETED")
        m.add(C.STEP_ATTEMPTS, 2, target="noop", executor="inline")
    assert list(off.series(C.EXECUTIONS)) == [(("status", "COMPLETED"),)]
    assert list(on.series(C.EXECUTIONS)) == [(("status", "COMPLETED"), ("team", "acme"))]
    assert next(iter(on.series(C.STEP_ATTEMPTS))) == (("target", "noop"), ("executor", "inline"))
    with pytest.raises(ValueError, match="no team label"):
        on.add(C.STEP_ATTEMPTS, team="acme", target="noop", executor="inline")


def test_a_recording_mistake_is_raised_in_tests_and_only_logged_once_elsewhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    strict = MemoryMetrics()
    with pytest.raises(ValueError, match="takes labels"):
        strict.add(C.EXECUTIONS, state="COMPLETED")
    with pytest.raises(TypeError, match="is a counter"):
        strict.set(C.EXECUTIONS, 1, status="x")
    with pytest.raises(ValueError, match="cannot be recorded"):
        strict.add(C.EXECUTIONS, -1, status="x")

    class Lenient(MemoryMetrics):
        strict = False

    lenient = Lenient()
    for _ in range(3):
        lenient.add(C.EXECUTIONS, state="COMPLETED")  # the work it measures goes on
    assert [r.message for r in caplog.records] == ["metric linqra_executions_total not recorded"]
    assert NOOP.enabled is False
    NOOP.add(C.EXECUTIONS, whatever="is ignored")


# -- what the layers record, through a System ---------------------------------------------
@pytest.fixture
async def metered(llm_settings: Settings) -> Any:
    metrics = MemoryMetrics(team_labels=True)
    system = await System.open(llm_settings, metrics=metrics)
    yield system, metrics
    await system.close()


async def test_executions_and_steps_are_counted_with_durations_and_attempts(metered: Any) -> None:
    system, m = metered
    wf = await system.workflows.create(TEAM, {"name": "two", "steps": [
        {"step": 1, "target": "transform", "params": {"expression": "`1`", "input": {}}},
        {"step": 2, "target": "quotes-service", "action": "fetch", "intent": "/api/people",
         "retry": {"maxAttempts": 2}},
        {"step": 3, "target": "quotes-service", "action": "fetch", "intent": "/missing"},
    ]})  # fmt: skip
    runner = system.runner("metrics-test")
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id)
    await runner.submit(TEAM, ex["id"])
    record = await runner.wait(TEAM, ex["id"], 30)
    assert record["status"] == "FAILED"
    assert m.value(C.EXECUTIONS_STARTED, reason="submitted", team=TEAM) == 1
    assert m.value(C.EXECUTIONS, status="FAILED", team=TEAM) == 1
    [seconds] = m.observations(C.EXECUTION_DURATION, status="FAILED", team=TEAM)
    assert seconds == pytest.approx(record["duration_ms"] / 1000)
    assert m.value(C.STEPS, team=TEAM, target="transform", executor="inline", status="COMPLETED") == 1
    assert m.value(C.STEPS, team=TEAM, target="quotes-service", status="COMPLETED") == 1
    assert m.value(C.STEPS, team=TEAM, target="quotes-service", status="FAILED") == 1
    steps = {s["step"]: s for s in record["steps"]}
    assert m.value(C.STEP_ATTEMPTS, target="quotes-service") == sum(
        steps[n]["attempts"] for n in (2, 3)
    )
    assert len(m.observations(C.STEP_DURATION)) == 3


async def test_steps_that_end_without_running_are_counted_too(metered: Any) -> None:
    system, m = metered
    wf = await system.workflows.create(TEAM, {"name": "quiet", "steps": [
        {"step": 1, "target": "noop", "params": {"a": 1}, "cacheConfig": {"enabled": True}},
        {"step": 2, "target": "noop", "condition": "{{params.never}} == true"},
        {"step": 3, "target": "noop", "params": {"b": "{{step2.result}}"}},
    ]})  # fmt: skip
    for _ in range(2):  # the second run answers step 1 from the step cache
        record = await system.runs.run_execution(TEAM, 30, workflow_id=wf.id, params={"never": 0})
        assert record["status"] == "FAILED"
    assert m.value(C.STEPS, team=TEAM, target="noop", executor="inline", status="COMPLETED") == 1
    assert m.value(C.STEPS, team=TEAM, target="noop", executor="cache", status="COMPLETED") == 1
    assert m.value(C.STEPS, team=TEAM, target="noop", status="SKIPPED") == 2
    assert m.value(C.STEPS, team=TEAM, target="noop", status="FAILED") == 2  # refused: step 2 skipped


async def test_model_calls_count_tokens_and_exact_cost_and_time_to_first_token(
    metered: Any,
) -> None:
    system, m = metered
    caller = {"type": "test"}
    ask = [Message("user", "tell me something short")]
    done = await system.llm.complete(TEAM, "openai:gpt-4o", ask, ModelSettings(), caller=caller)
    streamed = None
    async for event in system.llm.stream(
        TEAM, "openai:gpt-4o", ask, ModelSettings(), caller=caller
    ):
        streamed = event
    assert streamed is not None and not isinstance(streamed, Delta)
    labels = {"provider": "openai", "model": done.response.model}
    assert m.value(C.LLM_CALLS, status="ok", operation="chat", team=TEAM, **labels) == 2
    usage = [done.response.usage, streamed.response.usage]
    assert m.value(C.LLM_TOKENS, kind="output", **labels) == sum(u.output_tokens for u in usage)
    assert m.value(C.LLM_TOKENS, kind="input", **labels) == sum(u.input_tokens for u in usage)
    assert done.cost is not None and streamed.cost is not None
    nanos = m.value(C.LLM_COST, currency=done.cost.currency, **labels)
    assert nanos == to_nanos(done.cost.amount) + to_nanos(streamed.cost.amount) > 0
    assert len(m.observations(C.LLM_CALL_DURATION, operation="chat")) == 2
    assert len(m.observations(C.LLM_TIME_TO_FIRST_TOKEN, **labels)) == 1  # the stream's

    await system.llm.budgets.set(TEAM, "0.000000001", "day")
    with pytest.raises(BudgetExceeded):
        await system.llm.complete(TEAM, "openai:gpt-4o", ask, ModelSettings(), caller=caller)
    assert m.value(C.LLM_BUDGET_REFUSALS, budget="team", team=TEAM) == 1
    assert m.value(C.LLM_CALLS, status="ok") == 2  # a refused call is not a call


async def test_ingestion_and_search_are_measured(metered: Any) -> None:
    system, m = metered
    col = await system.knowledge.create_collection(TEAM, {"name": "notes"})
    doc, _ = await system.knowledge.add_document(
        TEAM, col.id, b"Ray actors are found by name. " * 40, file_name="n.txt"
    )
    ready = await system.knowledge.ingest(TEAM, doc["id"])
    assert ready["status"] == "READY"
    assert m.value(C.KNOWLEDGE_CHUNKS) == ready["chunks_total"] > 0
    assert m.value(C.KNOWLEDGE_DOCUMENTS, status="READY") == 1
    await system.knowledge.search(TEAM, col.id, query="actors")
    assert len(m.observations(C.KNOWLEDGE_SEARCH_DURATION)) == 1


async def test_the_scheduler_counts_fires_misfires_and_lateness(metered: Any) -> None:
    from linqra.scheduling.scheduler import Scheduler, parse_instant

    system, m = metered
    agent = await system.agents.create_agent(TEAM, {"name": "ops"})
    task = await system.agents.create_task(TEAM, agent.id, {
        "name": "every 10 s", "type": "DATA_PROCESSING", "config": {"expression": "@"},
        "triggers": [{"type": "CRON", "cron": "*/10 * * * * ?"}]})  # fmt: skip
    dispatched: list[str] = []

    async def dispatch(team: str, agent_id: str, tx_id: str, priority: int) -> None:
        dispatched.append(tx_id)

    scheduler = Scheduler(system.agents, system.settings.agents, dispatch, metrics=m)
    due = parse_instant(task.schedules[0].next_fire_at)
    assert await scheduler.tick(due + timedelta(milliseconds=250)) == 1
    assert m.observations(C.SCHEDULE_LATENESS) == [pytest.approx(0.25)]
    assert await scheduler.tick(due + timedelta(seconds=600)) == 1  # down for ten minutes
    assert m.value(C.SCHEDULE_MISFIRES, policy="FIRE_ONCE_NOW") == 1
    assert m.value(C.SCHEDULE_FIRES, outcome="started") == 2 == len(dispatched)


async def test_a_consumer_groups_lag_and_dead_letters_are_recorded(metered: Any) -> None:
    from linqra.events import DeadLetters, GuardedConsumer, RedeliveryPolicy
    from linqra.events.memory import MemoryEventBus

    system, m = metered
    bus = MemoryEventBus()
    dead_letters = DeadLetters(system.store)
    await dead_letters.init()

    async def handle(event: Any) -> None:
        if event.payload.get("bad"):
            raise ValueError("cannot")

    subscription = await bus.subscribe("t.topic", "g1", "c1")
    consumer = GuardedConsumer(subscription, handle, dead_letters, group="g1",
                               policy=RedeliveryPolicy(1, 0.01), metrics=m)  # fmt: skip
    await bus.publish("t.topic", {"n": 1})
    await bus.publish("t.topic", {"bad": True})
    while consumer.handled + consumer.dead < 2:
        await consumer.poll(10, 0.5)
    [lag] = m.observations(C.EVENT_CONSUMER_LAG, group="g1")
    assert 0 <= lag < 5
    assert m.value(C.EVENT_DEAD_LETTERS, group="g1") == 1
    await bus.close()


async def test_the_backlog_of_a_queue_is_its_waiting_jobs_and_the_oldest_ones_age(
    system: System,
) -> None:
    jobs = system.agents.jobs
    assert await jobs.backlog() == (0, 0.0)
    now = utcnow()
    for i, ago in enumerate((5, 30, 1)):
        await system.store.insert(jobs.kind.collection, f"team-{i}", {
            "id": f"tx-{i}", "status": jobs.kind.pending,
            "heartbeat_at": iso(now - timedelta(seconds=ago))})  # fmt: skip
    depth, age = await jobs.backlog()
    assert depth == 3 and 30 <= age < 40
    assert (await jobs.backlog(limit=2))[0] == 2


# -- without Ray: prometheus_client on metrics.port -------------------------------------------
async def test_a_process_without_ray_serves_its_metrics_on_metrics_port(settings: Settings) -> None:
    configured = settings.model_copy(update={"metrics": MetricsSettings(port=0)})
    system = await System.open(configured)
    try:
        assert isinstance(system.metrics, PrometheusMetrics) and system.metrics.url
        runner = system.runner("metrics-port")
        wf = {"steps": [{"step": 1, "target": "noop"}]}
        ex = await system.workflows.new_execution(
            TEAM, definition=system.workflows.validate_definition(wf)
        )
        await runner.submit(TEAM, ex["id"])
        assert (await runner.wait(TEAM, ex["id"], 30))["status"] == "COMPLETED"
        async with httpx.AsyncClient() as http:
            page = (await http.get(system.metrics.url)).text
        assert 'linqra_executions_total{status="COMPLETED"} 1.0' in page
        assert "# TYPE linqra_step_duration_seconds histogram" in page
    finally:
        await system.close()
    with pytest.raises(httpx.ConnectError):  # closed with its system
        async with httpx.AsyncClient() as http:
            await http.get(system.metrics.url, timeout=2)


async def test_metrics_off_or_without_a_port_record_nothing(settings: Settings) -> None:
    system = await System.open(settings)
    try:
        assert system.metrics is NOOP
    finally:
        await system.close()
    off = settings.model_copy(update={"metrics": MetricsSettings(enabled=False, port=0)})
    from linqra.metrics import open_metrics

    assert open_metrics(off) is NOOP


def test_the_gateway_counts_requests_by_route_template_and_status(metered: Any) -> None:
    from fastapi.testclient import TestClient

    from deployments.app import create_app

    system, m = metered
    with TestClient(create_app(system), headers={"X-Team-Id": TEAM}) as http:
        assert http.get("/v1/workflows").status_code == 200
        assert http.get("/v1/workflows/wf_nope").status_code == 404
        assert http.post("/v1/workflows", json={"name": ""}).status_code == 400
        assert http.get("/no/such/path").status_code == 404
    route = "/v1/workflows/{workflow_id}"  # the template, never the path: bounded labels
    assert m.value(C.HTTP_REQUESTS, http_route="/v1/workflows", method="GET", status="200") == 1
    assert m.value(C.HTTP_REQUESTS, http_route=route, method="GET", status="404") == 1
    assert m.value(C.HTTP_REQUESTS, http_route="/v1/workflows", method="POST", status="400") == 1
    assert m.value(C.HTTP_REQUESTS, http_route="unmatched", status="404") == 1
    assert len(m.observations(C.HTTP_REQUEST_DURATION)) == 4
