"""The analytics service (:mod:`linqra.analytics`) on SQLite and on a MongoDB wire server
(SecantusDB): real workflow runs, task executions, chat runs and LLM usage rows, counted in the
store; the figures checked against the records themselves."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from linqra.analytics import AnalyticsService
from linqra.config import Settings
from linqra.errors import NotFound, ValidationError
from linqra.llm.pricing import Cost
from linqra.llm.types import Usage
from linqra.llm.usage import UsageRepository
from linqra.system import System
from tests.support.servers import HttpService

TEAM = "team-an"


@pytest.fixture(params=["sqlite", "mongo"])
async def system(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[System]:
    if request.param == "mongo":
        url = request.getfixturevalue("mongo_url").rsplit("/", 1)[0]
        settings = settings.model_copy(update={"store_url": f"{url}/an{uuid.uuid4().hex[:10]}"})
    sys_ = await System.open(settings)
    yield sys_
    await sys_.close()


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered))) - 1]


def steps(http: HttpService) -> list[dict[str, Any]]:
    return [
        {   # three attempts each run: the service fails twice per key
            "step": 1, "target": "http", "action": "fetch", "intent": f"{http.url}/flaky",
            "params": {"key": "{{params.key}}", "fail": 2},
            "retry": {"maxAttempts": 4, "initialDelayMs": 5},
        },
        {   # fails for a string x
            "step": 2, "target": "transform",
            "params": {"expression": "abs(@)", "input": "{{params.x}}"},
        },
        {
            "step": 3, "target": "noop", "params": {"label": "{{params.label}}", "n": "{{step2.result}}"},
            "cacheConfig": {"enabled": True, "ttl": "600"},
        },
    ]  # fmt: skip


RUNS = [(1, "a"), (2, "a"), (1, "a"), (3, "b"), ("bad", "a"), ("worse", "b")]
"""(x, label): four complete (the third from the step cache at step 3), two fail at step 2."""


async def _run_all(system: System, http: HttpService) -> tuple[str, list[dict[str, Any]]]:
    wf = await system.workflows.create(TEAM, {"name": "analysed", "steps": steps(http)})
    records = []
    for x, label in RUNS:
        params = {"x": x, "label": label, "key": f"k{time.monotonic_ns()}"}
        records.append(await system.runs.run_execution(TEAM, 30, workflow_id=wf.id, params=params))
    return wf.id, records


async def test_workflow_and_step_analytics_from_real_runs(
    system: System, http_service: HttpService
) -> None:
    wf, records = await _run_all(system, http_service)
    assert [r["status"] for r in records] == ["COMPLETED"] * 4 + ["FAILED"] * 2
    analytics = AnalyticsService(system.store)

    page = await analytics.runs(TEAM, "workflows")
    (item,) = page["items"]
    durations = [r["duration_ms"] for r in records]
    assert item["workflow"] == wf and item["workflow_name"] == "analysed"
    assert (item["runs"], item["completed"], item["failed"], item["finished"]) == (6, 4, 2, 6)
    assert item["success_rate"] == round(4 / 6, 4) and item["failure_rate"] == round(2 / 6, 4)
    shown = item["duration_ms"]
    for name, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert shown[name] == pytest.approx(nearest_rank(durations, p), abs=1e-3)
    assert shown["max"] == pytest.approx(max(durations), abs=1e-3)
    assert page["group_by"] == ["workflow"] and page["total"] == 1
    by_status = await analytics.runs(TEAM, "workflows", group_by="status", sort="runs")
    assert [(i["status"], i["runs"]) for i in by_status["items"]] == [
        ("COMPLETED", 4),
        ("FAILED", 2),
    ]
    hourly = await analytics.runs(TEAM, "workflows", bucket="hour")
    assert sum(i["runs"] for i in hourly["items"]) == 6
    assert all(i["bucket"].endswith(":00:00Z") for i in hourly["items"])
    assert (await analytics.runs("team-other", "workflows"))["items"] == []

    per_step = {i["step"]: i for i in (await analytics.steps(TEAM, workflow_id=wf))["items"]}
    assert (per_step[1]["runs"], per_step[1]["attempts_max"], per_step[1]["attempts_avg"]) == (
        6,
        3,
        3.0,
    )
    assert per_step[1]["target"] == "http"
    assert (per_step[2]["failed"], per_step[2]["error_codes"]) == (2, ["transform_failed"])
    assert per_step[2]["failure_rate"] == round(2 / 6, 4)
    assert (per_step[3]["runs"], per_step[3]["cache_hits"]) == (4, 1)
    step1 = [s["duration_ms"] for r in records for s in r["steps"] if s["step"] == 1]
    assert per_step[1]["duration_ms"]["p95"] == pytest.approx(nearest_rank(step1, 0.95), abs=1e-3)
    executed3 = [s["duration_ms"] for r in records for s in r["steps"]
                 if s["step"] == 3 and not s["cache_hit"]]  # fmt: skip
    assert per_step[3]["duration_ms"]["max"] == pytest.approx(max(executed3), abs=1e-3)
    failures = await analytics.steps(
        TEAM, workflow_id=wf, group_by="step,error_code", status="FAILED"
    )
    assert [(i["step"], i["error_code"], i["runs"]) for i in failures["items"]] == [
        (2, "transform_failed", 2)
    ]
    by_target = await analytics.steps(TEAM, sort="p95")  # every workflow, per target
    assert {i["target"] for i in by_target["items"]} == {"http", "transform", "noop"}

    labels = await analytics.results(TEAM, wf, "label")
    assert labels["exact"] and labels["matched"] == 4
    assert [(i["value"], i["count"]) for i in labels["items"]] == [("a", 3), ("b", 1)]
    whole = await analytics.results(TEAM, wf, "@", limit=1)
    assert whole["total"] == 3 and whole["next_offset"] == 1  # {a,1} twice, {a,2}, {b,3}
    computed = await analytics.results(TEAM, wf, "length(label)")
    assert computed["exact"] and [(i["value"], i["count"]) for i in computed["items"]] == [(1, 4)]
    sampled = await analytics.results(TEAM, wf, "label == 'a'", sample=2)
    assert not sampled["exact"] and sampled["scanned"] == 2 and sampled["matched"] == 4
    failed = await analytics.results(TEAM, wf, "label", status="FAILED")
    assert failed["items"] == [{"value": None, "count": 2}]  # their results have no label

    slow = await analytics.slowest(TEAM, n=2)
    assert [i["duration_ms"] for i in slow["items"]] == sorted(durations, reverse=True)[:2]
    slow_steps = await analytics.slowest(TEAM, of="steps", workflow_id=wf, n=3)
    assert [i["duration_ms"] for i in slow_steps["items"]] == sorted(
        (s["duration_ms"] for r in records for s in r["steps"]), reverse=True
    )[:3]


async def test_timeline_is_ready_for_a_gantt_chart(
    system: System, http_service: HttpService
) -> None:
    _, records = await _run_all(system, http_service)
    analytics = AnalyticsService(system.store)
    cached = records[2]
    line = await analytics.timeline(TEAM, cached["id"])
    assert (line["status"], line["workflow_name"], line["cache_hits"]) == (
        "COMPLETED",
        "analysed",
        1,
    )
    assert [b["step"] for b in line["steps"]] == [1, 2, 3]
    first, second, third = line["steps"]
    assert (first["attempts"], first["executor"], first["cache_hit"]) == (3, "io", False)
    assert third["cache_hit"] is True and third["attempts"] == 0
    assert line["attempts"] == 3 + 1 + 0
    assert 0 <= line["wait_ms"] <= first["start_ms"] <= first["end_ms"] <= second["start_ms"]
    assert first["end_ms"] - first["start_ms"] == pytest.approx(first["duration_ms"], abs=2)
    failed = await analytics.timeline(TEAM, records[4]["id"])
    assert failed["steps"][1]["error_code"] == "transform_failed"
    with pytest.raises(NotFound) as info:
        await analytics.timeline("team-other", cached["id"])
    assert info.value.field == "execution_id"


def _task(i: int, status: str, start: str, seconds: float | None) -> dict[str, Any]:
    end = (
        None
        if seconds is None
        else f"{start[:17]}{int(seconds):02d}.{int(seconds % 1 * 1000):03d}000Z"
    )
    return {"id": f"tx{i}", "task_id": "task-1" if i < 5 else "task-2", "task_name": f"T{i // 5}",
            "agent_id": "ag", "type": "WORKFLOW_EMBEDDED", "trigger": {"type": "CRON"}, "idempotency_key": f"once{i}",
            "status": status, "created_at": start, "started_at": start if seconds is not None else None,
            "finished_at": end}  # fmt: skip


async def test_tasks_and_assistants_from_their_records(system: System) -> None:
    day = "2026-11-20T10:00:00.000000Z"
    for i, (status, seconds) in enumerate(
        [("COMPLETED", 1.0), ("COMPLETED", 3.0), ("FAILED", 2.5), ("CANCELLED", None),
         ("RUNNING", None), ("COMPLETED", 9.0)]
    ):  # fmt: skip
        await system.store.insert("task_executions", TEAM, _task(i, status, day, seconds))
    analytics = AnalyticsService(system.store)
    span = {"start": "2026-11-20", "end": "2026-11-21"}
    page = await analytics.runs(TEAM, "tasks", **span)
    one, two = page["items"]
    assert (one["task"], one["task_name"], one["runs"], one["completed"], one["failed"]) == (
        "task-1", "T0", 5, 2, 1,
    )  # fmt: skip
    assert (one["cancelled"], one["active"], one["finished"]) == (1, 1, 4)
    assert one["success_rate"] == 0.5 and one["failure_rate"] == 0.25
    assert one["duration_ms"] == {
        "avg": 2166.667,
        "p50": 2500.0,
        "p95": 3000.0,
        "p99": 3000.0,
        "max": 3000.0,
    }
    assert two["duration_ms"]["p50"] == 9000.0
    by_trigger = await analytics.runs(TEAM, "tasks", group_by="trigger,agent", bucket="day", **span)
    assert [(i["trigger"], i["agent"], i["bucket"], i["runs"]) for i in by_trigger["items"]] == [
        ("CRON", "ag", "2026-11-20T00:00:00Z", 6)
    ]

    for i, status in enumerate(["completed", "failed", "interrupted", "queued"]):
        await system.store.insert("chat_runs", TEAM, {
            "id": f"run{i}", "assistant_id": "as-1", "conversation_id": "c", "status": status,
            "created_at": day, "started_at": day, "finished_at": "2026-11-20T10:00:01.500000Z",
        })  # fmt: skip
    chats = await analytics.runs(TEAM, "assistants", **span)
    (chat,) = chats["items"]
    assert (chat["assistant"], chat["runs"], chat["completed"], chat["failed"], chat["active"]) == (
        "as-1", 4, 1, 2, 1,
    )  # fmt: skip
    assert chat["failure_rate"] == round(2 / 3, 4) and chat["duration_ms"]["p50"] == 1500.0


async def test_costs_are_exact_per_model_price_version_assistant_and_day(system: System) -> None:
    usage = UsageRepository(system.store)
    calls = [
        ("openai", "gpt-a", "0.000150", "v1", {"type": "step", "execution_id": "ex1"}),
        ("openai", "gpt-a", "0.000250", "v2", {"type": "step", "execution_id": "ex1"}),
        ("openai", "gpt-a", "0.100000", "v2", {"type": "chat", "assistant_id": "as1", "run_id": "r1"}),
        ("anthropic", "claude-b", "0.000003", "v9", {"type": "chat", "assistant_id": "as1", "run_id": "r2"}),
        ("anthropic", "claude-b", None, None, {"type": "api"}),
    ]  # fmt: skip
    for provider, model, amount, version, caller in calls:
        cost = None if amount is None else Cost(Decimal(amount), "USD", version, "standard")
        await usage.record(
            TEAM, provider=provider, model=model, requested=model,
            usage=Usage(input_tokens=10, output_tokens=5), cost=cost, latency_ms=12.5,
            caller=caller,
        )  # fmt: skip
    analytics = AnalyticsService(system.store)
    models = {i["model"]: i for i in (await analytics.costs(TEAM))["items"]}
    a, b = models["gpt-a"], models["claude-b"]
    assert (a["calls"], a["input_tokens"], a["output_tokens"]) == (3, 30, 15)
    assert Decimal(a["cost"]) == Decimal("0.100400") and a["price_versions"] == ["v1", "v2"]
    assert (b["unpriced_calls"], Decimal(b["cost"]), b["currencies"]) == (
        1,
        Decimal("0.000003"),
        ["USD"],
    )
    assert a["latency_ms"]["p95"] == 12.5
    versions = await analytics.costs(TEAM, group_by="model,price_version", sort="cost")
    assert [(i["model"], i["price_version"]) for i in versions["items"]] == [
        ("gpt-a", "v2"), ("gpt-a", "v1"), ("claude-b", "v9"), ("claude-b", None),
    ]  # fmt: skip
    team = (await analytics.costs(TEAM, group_by="team,provider,day"))["items"]
    assert {(i["team"], i["provider"]) for i in team} == {(TEAM, "openai"), (TEAM, "anthropic")}
    assistants = (await analytics.costs(TEAM, group_by="assistant", assistant_id="as1"))["items"]
    assert [(i["assistant"], Decimal(i["cost"])) for i in assistants] == [
        ("as1", Decimal("0.100003"))
    ]
    top = await analytics.expensive(TEAM, by="execution")
    assert [(i["execution"], Decimal(i["cost"])) for i in top["items"]] == [
        ("ex1", Decimal("0.0004"))
    ]
    calls_top = await analytics.expensive(TEAM, by="call", n=2)
    assert [Decimal(i["cost"]) for i in calls_top["items"]] == [Decimal("0.1"), Decimal("0.00025")]


async def test_bad_queries_are_400_naming_the_field(system: System) -> None:
    analytics = AnalyticsService(system.store)
    cases = [
        ({"start": "2026-01-01", "end": "2026-06-01"}, "from"),
        ({"start": "2026-01-01", "end": "2026-01-20", "bucket": "hour"}, "from"),
        ({"bucket": "week"}, "bucket"),
        ({"group_by": "workflow,nope"}, "group_by"),
        ({"group_by": "workflow,version,status,source"}, "group_by"),
        ({"group_by": "status,status"}, "group_by"),
        ({"sort": "fastest"}, "sort"),
        ({"start": "2026-01-02", "end": "2026-01-01"}, "to"),
        ({"start": "yesterday"}, "from"),
        ({"end": "2026-01-01T10:00:00"}, "to"),  # no time zone
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"offset": -1}, "offset"),
        ({"task_id": "x"}, "task_id"),  # not a workflow filter
    ]
    for query, field in cases:
        with pytest.raises(ValidationError) as info:
            await analytics.runs(TEAM, "workflows", **query)
        assert info.value.field == field, (query, info.value)
    for call, field in (
        (analytics.results(TEAM, "wf", "a[?"), "path"),
        (analytics.results(TEAM, "wf", "a", sample=0), "sample"),
        (analytics.slowest(TEAM, of="nothing"), "of"),
        (analytics.slowest(TEAM, n=101), "n"),
        (analytics.expensive(TEAM, by="planet"), "by"),
        (analytics.costs(TEAM, group_by="galaxy"), "group_by"),
        (analytics.steps(TEAM, group_by="workflow"), "group_by"),
        (analytics.runs(TEAM, "planets"), "kind"),
    ):
        with pytest.raises(ValidationError) as info:
            await call
        assert info.value.field == field
