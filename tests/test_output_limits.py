"""Step outputs and execution records have documented size limits (issue 9).

A 494-byte workflow whose ``transform`` of 20 chained ``[@, @]`` pipes yields a 22 MB
output used to be stored whole; no team could execute anything afterwards. Now such a
step fails at once with ``output_too_large`` (not retried), nothing oversized is written,
and the team keeps executing.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jmespath
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from linqra.errors import PayloadTooLarge
from linqra.steps.runtime import json_size
from linqra.system import System
from linqra.workflows.records import EXECUTIONS, MAX_RECORD_BYTES, STEP_RUNS
from tests.support.servers import HttpService

TEAM = "team-limits"
ONE_MIB = 1024 * 1024


def doubling(pipes: int) -> str:
    return " | ".join(["[@, @]"] * pipes)


async def run(system: System, body: dict[str, Any], params: dict[str, Any] | None = None) -> Any:
    wf = await system.workflows.create(TEAM, body)
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id, params=params or {})
    runner = system.runner("limits-runner")
    await runner.submit(TEAM, ex["id"])
    return await runner.wait(TEAM, ex["id"], 60)


def by_step(record: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {s["step"]: s for s in record["steps"]}


def test_json_size_is_exact_below_the_limit_and_stops_early_above_it() -> None:
    wide = {f"k{i}": [i, "v"] for i in range(1500)}  # past the C encoder's fast path
    for value in ({"a": [1, 2.5, None, True], "é": "ünïcode ☃"}, [], "x" * 1000, 12,
                  {1: (2, "tuple")}, wide, [["\n\u2028" * 50] * 40] * 30):  # fmt: skip
        exact = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        assert json_size(value, ONE_MIB) == exact
        assert json_size(value, exact - 1 if exact > 1 else 0) is None
    bomb = jmespath.search(doubling(40), "stoic quotes here!!")  # 2**40 leaves: 23 TB as JSON
    t0 = time.monotonic()
    assert json_size(bomb, ONE_MIB) is None
    assert time.monotonic() - t0 < 5
    shared = ["x" * 1000]
    for _ in range(40):  # few values, but each is referred to twice: 2**40 KB as JSON
        shared = [shared, shared]
    assert json_size(shared, ONE_MIB) is None
    with pytest.raises(ValueError):
        json_size({"x": float("nan")}, ONE_MIB)


async def test_a_500_byte_transform_bomb_fails_its_step_and_the_team_keeps_executing(
    system: System,
) -> None:
    body = {
        "name": "bomb",
        "steps": [
            {"step": 1, "target": "noop", "params": {"text": "stoic quotes here!!"}},
            {
                "step": 2,
                "target": "transform",
                "params": {"expression": doubling(20), "input": "{{step1.result.text}}"},
            },
        ],
    }
    assert len(json.dumps(body)) < 600  # the workflow was 494 bytes
    t0 = time.monotonic()
    record = await run(system, body)
    elapsed = time.monotonic() - t0
    assert record["status"] == "FAILED", record
    step2 = by_step(record)[2]
    assert step2["status"] == "FAILED" and step2["output"] is None
    assert step2["error"]["code"] == "output_too_large"
    assert "step 2" in step2["error"]["message"]
    assert "1,048,576 bytes" in step2["error"]["message"]
    assert "execution.max_step_output_bytes" in step2["error"]["message"]
    assert record["error"]["code"] == "output_too_large" and record["error"]["step"] == 2
    assert elapsed < 10, f"the bomb took {elapsed:.1f}s to fail"
    # nothing oversized reached the store
    stored = await system.store.find(STEP_RUNS, TEAM, {"execution_id": record["id"]})
    execution = await system.store.get(EXECUTIONS, TEAM, record["id"])
    assert len(json.dumps([stored, execution])) < 20_000
    # the team (and the store) go on as before
    await system.store.check(5)
    ok = await run(
        system,
        {
            "name": "after",
            "steps": [
                {"step": 1, "target": "noop", "params": {"text": "calm"}},
                {
                    "step": 2,
                    "target": "transform",
                    "params": {"expression": doubling(3), "input": "{{step1.result.text}}"},
                },
            ],
        },
    )
    assert ok["status"] == "COMPLETED", ok
    assert ok["result"] == [[["calm"] * 2] * 2] * 2


async def test_an_oversized_output_is_not_retried(system: System) -> None:
    record = await run(
        system,
        {
            "name": "retried",
            "steps": [
                {
                    "step": 1,
                    "target": "transform",
                    "params": {"expression": doubling(24), "input": "{{params.s}}"},
                    "retry": {"maxAttempts": 3, "initialDelayMs": 0},
                }
            ],
        },
        {"s": "x"},
    )
    step = by_step(record)[1]
    assert step["error"]["code"] == "output_too_large" and step["attempts"] == 1


async def test_an_output_with_nan_fails_the_step_instead_of_poisoning_the_records(
    system: System,
) -> None:
    async def nan(request: Request) -> Response:
        return Response('{"value": NaN, "ok": 1}', media_type="application/json")

    with HttpService("nan", Starlette(routes=[Route("/nan", nan)])) as service:
        record = await run(
            system,
            {
                "name": "nan",
                "steps": [
                    {"step": 1, "target": "http", "action": "fetch", "intent": f"{service.url}/nan"}
                ],
            },
        )
    step = by_step(record)[1]
    assert record["status"] == "FAILED" and step["error"]["code"] == "output_not_json"
    assert "step 1" in step["error"]["message"]
    page, total = await system.workflows.executions.page(TEAM)  # the team's records still read
    assert total >= 1 and any(e["id"] == record["id"] for e in page)


async def test_step_inputs_over_the_record_limit_fail_before_the_step_runs(
    system: System,
) -> None:
    blob = "y" * (900 * 1024)
    record = await run(
        system,
        {
            "name": "fan-in",
            "steps": [
                {"step": 1, "target": "noop", "params": {"s": "{{params.blob}}"}},
                {
                    "step": 2,
                    "target": "noop",
                    "params": {k: "{{step1.result.s}}" for k in "abcde"},  # 5 x 900 KiB
                },
            ],
        },
        {"blob": blob},
    )
    step2 = by_step(record)[2]
    assert step2["status"] == "FAILED" and step2["error"]["code"] == "inputs_too_large"
    assert step2["error"]["field"] == "params" and "step 2" in step2["error"]["message"]
    assert step2["attempts"] == 0 and "inputs" not in step2
    assert f"{MAX_RECORD_BYTES:,} bytes" in step2["error"]["message"]


async def test_execution_params_over_the_record_limit_are_refused_and_nothing_is_written(
    system: System,
) -> None:
    wf = await system.workflows.create(
        TEAM, {"name": "p", "steps": [{"step": 1, "target": "noop", "params": {}}]}
    )
    before = await system.store.count(EXECUTIONS, TEAM)
    with pytest.raises(PayloadTooLarge) as caught:
        await system.workflows.new_execution(
            TEAM, workflow_id=wf.id, params={"big": "z" * (MAX_RECORD_BYTES + 1)}
        )
    assert caught.value.status == 413 and caught.value.field == "params"
    assert await system.store.count(EXECUTIONS, TEAM) == before
