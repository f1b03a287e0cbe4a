"""The workflow engine and runner in-process (no Ray): semantics, records, resilience."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from linqra.clock import parse_iso
from linqra.errors import Conflict
from linqra.system import System
from tests.support.servers import HttpService

TEAM = "team-a"


async def run(
    system: System,
    steps: list[dict[str, Any]],
    params: dict[str, Any] | None = None,
    **definition: Any,
) -> dict[str, Any]:
    wf = await system.workflows.create(TEAM, {"name": "t", "steps": steps, **definition})
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id, params=params or {})
    runner = system.runner("test-runner")
    await runner.submit(TEAM, ex["id"])
    return await runner.wait(TEAM, ex["id"], 30)


def by_step(record: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {s["step"]: s for s in record["steps"]}


async def test_quote_workflow_against_a_local_service(
    system: System, http_service: HttpService
) -> None:
    record = await run(
        system,
        [
            {
                "step": 1,
                "target": "quotes-service",
                "action": "fetch",
                "intent": "/api/people/random",
                "params": {"i": 1},
            },
            {
                "step": 2,
                "target": "transform",
                "params": {
                    "expression": "{name: fullName, stoic: contains(tags, 'stoic')}",
                    "input": "{{step1.result}}",
                },
            },
            {
                "step": 3,
                "target": "http",
                "action": "create",
                "intent": f"{http_service.url}/echo/{{{{params.topic}}}}",
                "payload": {
                    "who": "{{step2.result.name}}",
                    "text": "One saying by {{step2.result.name}} about {{params.topic}}.",
                },
            },
        ],
        {"topic": "calm & courage"},
    )
    assert record["status"] == "COMPLETED", record
    steps = by_step(record)
    assert steps[1]["output"]["fullName"] == "Seneca"
    assert steps[2]["output"] == {"name": "Seneca", "stoic": True}
    echo = steps[3]["output"]
    assert echo["method"] == "POST" and echo["path"] == "/echo/calm & courage"
    assert "calm%20%26%20courage" in steps[3]["inputs"]["intent"]
    assert '"who":"Seneca"' in echo["body"]
    assert record["result"] == echo and record["workflow_version"] == 1
    for step in record["steps"]:
        assert (
            step["started_at"] <= step["finished_at"]
            and step["attempts"] == 1
            and step["duration_ms"] >= 0
        )


async def test_dag_runs_independent_steps_at_once(
    system: System, http_service: HttpService
) -> None:
    steps = [
        {
            "step": i,
            "target": "http",
            "action": "fetch",
            "intent": f"{http_service.url}/sleep",
            "params": {"ms": 300},
        }
        for i in range(1, 9)
    ]
    steps.append(
        {
            "step": 9,
            "target": "noop",
            "params": {"all": [f"{{{{step{i}.result.slept_ms}}}}" for i in range(1, 9)]},
        }
    )
    t0 = time.monotonic()
    record = await run(system, steps, mode="dag")
    elapsed = time.monotonic() - t0
    assert record["status"] == "COMPLETED"
    assert record["result"] == {"all": [300.0] * 8}
    assert elapsed < 1.2, elapsed  # sequential would be 2.4 s


async def test_sequential_is_the_default(system: System, http_service: HttpService) -> None:
    steps = [
        {
            "step": i,
            "target": "http",
            "action": "fetch",
            "intent": f"{http_service.url}/sleep",
            "params": {"ms": 150},
        }
        for i in range(1, 4)
    ]
    record = await run(system, steps)
    runs = sorted(record["steps"], key=lambda s: s["step"])
    assert record["mode"] == "sequential"
    assert (
        runs[0]["finished_at"] <= runs[1]["started_at"]
        and runs[1]["finished_at"] <= runs[2]["started_at"]
    )


async def test_conditions_and_jumps(system: System) -> None:
    record = await run(
        system,
        [
            {"step": 1, "target": "noop", "params": {"count": 0, "sync": False}},
            {
                "step": 2,
                "target": "noop",
                "condition": "{{step1.result.count}} > 0",
                "params": {"x": 1},
            },
            {
                "step": 3,
                "target": "noop",
                "params": {"y": "{{step2.result.x??'skipped'}}"},
                "jump": {"condition": "{{step1.result.sync}} == false", "targetStep": 5},
            },
            {"step": 4, "target": "noop", "params": {"never": True}},
            {
                "step": 5,
                "target": "noop",
                "params": {"done": True},
                "jump": {"condition": "true", "targetStep": 0},
            },
            {"step": 6, "target": "noop", "params": {"after_end": True}},
        ],
    )
    steps = by_step(record)
    assert record["status"] == "COMPLETED"
    assert steps[2]["status"] == "SKIPPED" and steps[2]["skip_reason"] == "condition"
    assert steps[3]["output"] == {"y": "skipped"}
    assert 4 not in steps
    assert steps[6]["status"] == "SKIPPED" and steps[6]["skip_reason"] == "jump"
    assert record["result"] == {"done": True}


async def test_backward_jump_loop_is_bounded(system: System, http_service: HttpService) -> None:
    key = f"loop-{time.monotonic_ns()}"
    record = await run(
        system,
        [
            {
                "step": 1,
                "target": "http",
                "action": "fetch",
                "intent": f"{http_service.url}/counter",
                "params": {"key": key},
            },
            {
                "step": 2,
                "target": "noop",
                "params": {"n": "{{step1.result.n}}"},
                "jump": {"condition": "{{step1.result.n}} < 3", "targetStep": 1},
            },
        ],
    )
    assert record["status"] == "COMPLETED"
    assert record["result"] == {"n": 3}
    assert by_step(record)[1]["runs"] == 3


async def test_missing_reference_fails_the_step_naming_the_path(system: System) -> None:
    record = await run(
        system,
        [
            {"step": 1, "target": "noop", "params": {"a": 1}},
            {"step": 2, "target": "noop", "params": {"b": "{{step1.result.nope}}"}},
            {"step": 3, "target": "noop"},
        ],
    )
    assert record["status"] == "FAILED"
    err = by_step(record)[2]["error"]
    assert (
        err["code"] == "missing_reference"
        and "step 2" in err["message"]
        and "step1.result.nope" in err["message"]
    )
    assert record["error"]["step"] == 2
    assert 3 not in by_step(record)


async def test_retry_with_backoff_then_success(system: System, http_service: HttpService) -> None:
    key = f"k{time.monotonic_ns()}"
    record = await run(
        system,
        [
            {
                "step": 1,
                "target": "http",
                "action": "fetch",
                "intent": f"{http_service.url}/flaky",
                "params": {"key": key, "fail": 2},
                "retry": {"maxAttempts": 4, "initialDelayMs": 10},
            },
        ],
    )
    step = by_step(record)[1]
    assert (
        record["status"] == "COMPLETED" and step["attempts"] == 3 and step["output"]["attempt"] == 3
    )


async def test_non_retryable_4xx_fails_at_once(system: System, http_service: HttpService) -> None:
    record = await run(
        system,
        [
            {
                "step": 1,
                "target": "http",
                "action": "fetch",
                "intent": f"{http_service.url}/status/404",
                "retry": {"maxAttempts": 5, "initialDelayMs": 10},
            },
        ],
    )
    step = by_step(record)[1]
    assert (
        record["status"] == "FAILED"
        and step["attempts"] == 1
        and step["error"]["code"] == "http_404"
    )


async def test_step_timeout(system: System, http_service: HttpService) -> None:
    record = await run(
        system,
        [
            {
                "step": 1,
                "target": "http",
                "action": "fetch",
                "intent": f"{http_service.url}/sleep",
                "params": {"ms": 2000},
                "timeoutSeconds": 0.3,
            },
        ],
    )
    assert record["status"] == "TIMEOUT"
    assert by_step(record)[1]["status"] == "TIMEOUT"


async def test_workflow_timeout(system: System) -> None:
    record = await run(
        system, [{"step": 1, "target": "wait", "params": {"seconds": 5}}], timeoutSeconds=0.3
    )
    assert record["status"] == "TIMEOUT" and record["error"]["code"] == "workflow_timeout"
    assert by_step(record)[1]["status"] == "CANCELLED"


async def test_step_cache_hits_within_ttl(system: System, http_service: HttpService) -> None:
    key = f"c{time.monotonic_ns()}"
    steps = [
        {
            "step": 1,
            "target": "http",
            "action": "fetch",
            "intent": f"{http_service.url}/counter",
            "params": {"key": key},
            "cacheConfig": {"enabled": True, "ttl": "60"},
        }
    ]
    first = await run(system, steps)
    second = await run(system, steps)
    assert by_step(first)[1]["cache_hit"] is False and by_step(second)[1]["cache_hit"] is True
    assert by_step(second)[1]["output"] == by_step(first)[1]["output"] == {"n": 1}


async def test_dag_failure_cancels_running_siblings(
    system: System, http_service: HttpService
) -> None:
    record = await run(
        system,
        [
            {
                "step": 1,
                "target": "http",
                "action": "fetch",
                "intent": f"{http_service.url}/sleep",
                "params": {"ms": 3000},
            },
            {
                "step": 2,
                "target": "http",
                "action": "fetch",
                "intent": f"{http_service.url}/status/400",
            },
            {"step": 3, "target": "noop", "params": {"a": "{{step1.result}}"}},
        ],
        mode="dag",
    )
    steps = by_step(record)
    assert record["status"] == "FAILED"
    assert steps[1]["status"] == "CANCELLED" and steps[2]["status"] == "FAILED"
    assert steps[3]["status"] == "SKIPPED" and steps[3]["skip_reason"] == "upstream"


async def test_cancel_stops_running_steps(system: System, http_service: HttpService) -> None:
    wf = await system.workflows.create(
        TEAM,
        {
            "name": "slow",
            "steps": [
                {
                    "step": 1,
                    "target": "http",
                    "action": "fetch",
                    "intent": f"{http_service.url}/sleep",
                    "params": {"ms": 5000, "key": "cancel-test"},
                }
            ],
        },
    )
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id)
    runner = system.runner("test-runner")
    await runner.submit(TEAM, ex["id"])
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    await runner.cancel(TEAM, ex["id"])
    record = await system.workflows.executions.full_record(TEAM, ex["id"])
    assert time.monotonic() - t0 < 2
    assert record["status"] == "CANCELLED" and record["steps"][0]["status"] == "CANCELLED"
    step = record["steps"][0]  # how long it ran before the cancel, as its times say
    ran = parse_iso(step["finished_at"]) - parse_iso(step["started_at"])
    assert step["duration_ms"] is not None and step["duration_ms"] > 0, step
    assert abs(step["duration_ms"] - ran.total_seconds() * 1000) < 2, step
    await asyncio.sleep(0.2)
    assert (
        http_service.state.calls.get("cancelled:cancel-test") == 1
    )  # the HTTP request itself was closed
    with pytest.raises(Conflict):
        await runner.cancel(TEAM, ex["id"])


async def test_resume_reruns_from_the_failed_step(
    system: System, http_service: HttpService
) -> None:
    key = f"r{time.monotonic_ns()}"
    record = await run(
        system,
        [
            {
                "step": 1,
                "target": "http",
                "action": "fetch",
                "intent": f"{http_service.url}/counter",
                "params": {"key": key},
            },
            {
                "step": 2,
                "target": "http",
                "action": "fetch",
                "intent": f"{http_service.url}/flaky",
                "params": {"key": key, "fail": 1},
            },
            {
                "step": 3,
                "target": "noop",
                "params": {"first": "{{step1.result.n}}", "second": "{{step2.result.attempt}}"},
            },
        ],
    )
    assert record["status"] == "FAILED" and record["error"]["step"] == 2
    runner = system.runner("test-runner")
    await runner.resume(TEAM, record["id"])
    resumed = await runner.wait(TEAM, record["id"], 30)
    assert resumed["status"] == "COMPLETED" and resumed["resumes"] == 1
    assert resumed["result"] == {"first": 1, "second": 2}  # step 1 was not run again
    history = await system.workflows.executions.full_record(TEAM, record["id"], history=True)
    assert [(s["step"], s["run"], s["status"]) for s in history["steps"]] == [
        (1, 1, "COMPLETED"),
        (2, 1, "FAILED"),
        (2, 2, "COMPLETED"),
        (3, 1, "COMPLETED"),
    ]
    with pytest.raises(Conflict):
        await runner.resume(TEAM, record["id"])


DOOMED_RUNNER = """
import asyncio, sys
from linqra.config import Settings
from linqra.system import System

async def main():
    system = await System.open(Settings.model_validate_json(sys.argv[1]))
    runner = system.runner("doomed")
    await runner.submit(sys.argv[2], sys.argv[3])
    print("started", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_orphaned_execution_is_adopted_and_finished(
    system: System, http_service: HttpService
) -> None:
    """A runner process killed mid-run leaves a stale heartbeat; another runner resumes the execution."""
    import subprocess
    import sys

    wf = await system.workflows.create(
        TEAM,
        {
            "name": "orphan",
            "steps": [
                {"step": 1, "target": "noop", "params": {"a": 1}},
                {
                    "step": 2,
                    "target": "http",
                    "action": "fetch",
                    "intent": f"{http_service.url}/sleep",
                    "params": {"ms": 4000},
                },
                {"step": 3, "target": "noop", "params": {"b": "{{step1.result.a}}"}},
            ],
        },
    )
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id)
    proc = subprocess.Popen(
        [sys.executable, "-c", DOOMED_RUNNER, system.settings.model_dump_json(), TEAM, ex["id"]],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        await asyncio.sleep(1.0)
    finally:
        proc.kill()  # SIGKILL: no cleanup, no last record
        proc.wait(10)
    doc = await system.workflows.executions.get(TEAM, ex["id"])
    assert doc["status"] == "RUNNING" and doc["runner_id"] == "doomed"
    rescuer = system.runner("rescuer")
    assert await rescuer.reap() == 0  # the heartbeat is still fresh
    await asyncio.sleep(system.settings.execution.stale_after_seconds + 0.5)
    assert await rescuer.reap() == 1
    record = await rescuer.wait(TEAM, ex["id"], 30)
    assert (
        record["status"] == "COMPLETED"
        and record["runner_id"] == "rescuer"
        and record["auto_resumes"] == 1
    )
    history = await system.workflows.executions.full_record(TEAM, ex["id"], history=True)
    assert [(s["step"], s["status"]) for s in history["steps"]] == [
        (1, "COMPLETED"),
        (2, "CANCELLED"),
        (2, "COMPLETED"),
        (3, "COMPLETED"),
    ]
    assert history["steps"][1]["error"]["code"] == "interrupted"


async def test_async_steps_do_not_hold_the_execution(
    system: System, http_service: HttpService
) -> None:
    record = await run(
        system,
        [
            {"step": 1, "target": "noop", "params": {"a": 1}},
            {
                "step": 2,
                "target": "http",
                "action": "fetch",
                "intent": f"{http_service.url}/sleep",
                "params": {"ms": 800},
                "async": True,
            },
            {"step": 3, "target": "noop", "params": {"b": 2}},
        ],
    )
    assert record["status"] == "COMPLETED" and record["pending_async_steps"] == [2]
    for _ in range(50):
        await asyncio.sleep(0.1)
        later = await system.workflows.executions.full_record(TEAM, record["id"])
        if not later["pending_async_steps"]:
            break
    assert later["pending_async_steps"] == [] and by_step(later)[2]["status"] == "COMPLETED"


async def test_other_teams_cannot_see_executions(system: System) -> None:
    record = await run(system, [{"step": 1, "target": "noop"}])
    from linqra.errors import NotFound

    with pytest.raises(NotFound):
        await system.workflows.executions.get("team-b", record["id"])


async def test_the_same_engine_on_mongodb_and_redis(
    settings: Any, mongo_url: str, redis_url: str, http_service: HttpService
) -> None:
    """The production adapters run the whole execution path: records in MongoDB, step cache in Redis."""
    import uuid

    db = mongo_url.rsplit("/", 1)[0] + f"/e{uuid.uuid4().hex[:10]}"
    prod = settings.model_copy(update={"store_url": db, "cache_url": redis_url})
    system = await System.open(prod)
    try:
        key = f"m{time.monotonic_ns()}"
        steps = [
            {
                "step": 1,
                "target": "quotes-service",
                "action": "fetch",
                "intent": "/api/people/random",
                "params": {"i": 2},
            },
            {
                "step": 2,
                "target": "http",
                "action": "fetch",
                "intent": f"{http_service.url}/counter",
                "params": {"key": key},
                "cacheConfig": {"enabled": True, "ttl": "60"},
            },
            {
                "step": 3,
                "target": "transform",
                "params": {
                    "expression": "join(' #', [a, to_string(b)])",
                    "input": {"a": "{{step1.result.fullName}}", "b": "{{step2.result.n}}"},
                },
            },
        ]
        first = await run(system, steps, mode="dag")
        second = await run(system, steps, mode="dag")
        assert first["status"] == second["status"] == "COMPLETED"
        assert first["result"] == second["result"] == "Epictetus #1"
        assert by_step(second)[2]["cache_hit"] is True
        listed, total = await system.workflows.executions.page(TEAM, workflow_id=None)
        assert total == 2 and {e["id"] for e in listed} == {first["id"], second["id"]}
    finally:
        await system.close()


async def test_dag_result_is_the_highest_step_not_the_last_to_finish(system: System) -> None:
    record = await run(
        system,
        [
            {"step": 1, "target": "wait", "params": {"seconds": 0.3, "who": "slow"}},
            {"step": 2, "target": "noop", "params": {"who": "fast"}},
        ],
        mode="dag",
    )
    assert record["result"] == {"who": "fast"} and record["last_completed_step"] == 2
    stored = await system.workflows.get(TEAM, record["workflow_id"])
    assert stored.mode == "dag"
    seq = await system.workflows.create(TEAM, {"name": "s", "steps": [{"step": 1, "target": "noop"}]})
    assert seq.mode == "sequential"


async def test_a_submit_that_finds_the_execution_already_adopted_leaves_it_alone(
    system: System,
) -> None:
    """The supervisor adopts PENDING executions whose starter went quiet; the starter's own
    submit arriving later (a loaded machine) must neither fail nor start it twice."""
    from linqra.errors import NotFound

    wf = await system.workflows.create(TEAM, {"name": "t", "steps": [
        {"step": 1, "target": "noop", "params": {"x": 1}}]})  # fmt: skip
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id)
    first, late = system.runner("adopter"), system.runner("late-starter")
    await first.submit(TEAM, ex["id"])
    await late.submit(TEAM, ex["id"])  # no Conflict: it was started meanwhile
    record = await first.wait(TEAM, ex["id"], 30)
    assert record["status"] == "COMPLETED" and record["runner_id"] == "adopter"
    assert late.running() == [] and [s["run"] for s in record["steps"]] == [1]
    with pytest.raises(NotFound):
        await late.submit(TEAM, "ex_unknown")
