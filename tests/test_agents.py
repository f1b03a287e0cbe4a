"""Agents, versioned tasks of every type and task executions, in process (the runner as a port)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from linqra.errors import Conflict, NotFound, ValidationError
from linqra.system import System


@pytest.fixture
async def setup(system: System) -> Any:
    runner = system.runner("agents-test")
    agent = await system.agents.create_agent("acme", {"name": "ops", "max_concurrency": 2})
    return system.agents, runner, agent


async def run(agents: Any, runner: Any, task: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    tx, created = await agents.new_task_execution("acme", task, **kwargs)
    assert created
    return await agents.run_task_execution("acme", tx["id"], runner)


async def test_every_task_type_runs_as_a_recorded_workflow(
    setup: Any, system: System, http_service: Any
) -> None:
    agents, runner, agent = setup
    embedded = await agents.create_task("acme", agent["id"], {
        "name": "fetch person", "type": "WORKFLOW_EMBEDDED",
        "config": {"steps": [{"step": 1, "target": "quotes-service", "action": "fetch", "intent": "/api/people/random"}]},
    })  # fmt: skip
    done = await run(agents, runner, embedded)
    assert done["status"] == "COMPLETED" and done["result"]["fullName"] and done["attempts"] == 1
    record = await system.service.executions.full_record("acme", done["execution_ids"][0])
    assert record["source"] == "task" and record["steps"][0]["target"] == "quotes-service"

    wf = await system.service.create("acme", {"name": "echo", "steps": [
        {"step": 1, "target": "transform", "params": {"expression": "upper", "input": "{{params}}"}}]})  # fmt: skip
    trigger = await agents.create_task("acme", agent["id"], {
        "name": "run workflow", "type": "WORKFLOW_TRIGGER", "config": {"workflow_id": wf["id"], "params": {"upper": "A"}},
    })  # fmt: skip
    assert (await run(agents, runner, trigger, input={"upper": "B"}))["result"] == "B"

    api = await agents.create_task("acme", agent["id"], {
        "name": "call api", "type": "API_CALL",
        "config": {"method": "POST", "service": "quotes-service", "path": "/echo/orders/{{params.id}}",
                   "headers": {"X-Trace": "t-{{params.id}}"}, "query": {"q": "{{params.id}}"},
                   "body": {"order": "{{params.id}}", "note": "hi"}},
    })  # fmt: skip
    echoed = (await run(agents, runner, api, input={"id": 42}))["result"]
    assert echoed["method"] == "POST" and echoed["path"] == "/echo/orders/42"
    assert echoed["query"] == {"q": "42"} and echoed["headers"]["x-trace"] == "t-42"
    assert json.loads(echoed["body"]) == {"order": 42, "note": "hi"}
    direct = await agents.create_task("acme", agent["id"], {
        "name": "call url", "type": "API_CALL",
        "config": {"method": "GET", "url": f"{http_service.url}/api/people"},
    })  # fmt: skip
    assert len((await run(agents, runner, direct))["result"]["people"]) == 3

    data = await agents.create_task("acme", agent["id"], {
        "name": "sum", "type": "DATA_PROCESSING", "config": {"expression": "sum(values)"},
    })  # fmt: skip
    assert (await run(agents, runner, data, input={"values": [1, 2, 3.5]}))["result"] == 6.5

    adhoc = {
        "type": "WORKFLOW_EMBEDDED_ADHOC",
        "config": {"steps": [{"step": 1, "target": "noop"}]},
    }
    assert (await run(agents, runner, adhoc))["status"] == "COMPLETED"
    listed, total = await agents.list_task_executions("acme", agent_id=agent["id"])
    assert total == 5 and all(t["status"] == "COMPLETED" for t in listed)


async def test_retries_with_backoff_then_failure_is_recorded(setup: Any) -> None:
    agents, runner, agent = setup
    task = await agents.create_task("acme", agent["id"], {
        "name": "flaky", "type": "API_CALL", "max_retries": 2, "backoff_seconds": 0.05,
        "config": {"method": "GET", "service": "quotes-service", "path": "/status/500"},
    })  # fmt: skip
    failed = await run(agents, runner, task)
    assert (
        failed["status"] == "FAILED"
        and failed["attempts"] == 3
        and len(failed["execution_ids"]) == 3
    )
    assert failed["error"]["message"]


async def test_timeout_and_cancel(setup: Any) -> None:
    agents, runner, agent = setup
    slow = await agents.create_task("acme", agent["id"], {
        "name": "slow", "type": "WORKFLOW_EMBEDDED", "timeout_seconds": 0.5,
        "config": {"steps": [{"step": 1, "target": "wait", "params": {"seconds": 30}}]},
    })  # fmt: skip
    timed_out = await run(agents, runner, slow)
    assert timed_out["status"] == "FAILED" and timed_out["error"]["code"] == "timeout"
    pending, _ = await agents.new_task_execution("acme", slow)
    cancelled = await agents.request_cancel("acme", pending["id"])
    assert cancelled["status"] == "CANCELLED"
    with pytest.raises(Conflict):
        await agents.request_cancel("acme", pending["id"])


async def test_idempotency_key_creates_one_execution(setup: Any) -> None:
    agents, _, agent = setup
    task = await agents.create_task(
        "acme", agent["id"], {"name": "n", "type": "DATA_PROCESSING", "config": {"expression": "@"}}
    )
    first, new1 = await agents.new_task_execution(
        "acme", task, idempotency_key="cron:x:2026-11-24T10:00:00Z"
    )
    second, new2 = await agents.new_task_execution(
        "acme", task, idempotency_key="cron:x:2026-11-24T10:00:00Z"
    )
    assert new1 and not new2 and first["id"] == second["id"]


async def test_versions_rollback_and_bad_input(setup: Any) -> None:
    agents, _, agent = setup
    task = await agents.create_task(
        "acme",
        agent["id"],
        {"name": "v1", "type": "DATA_PROCESSING", "config": {"expression": "a"}},
    )
    await agents.update_task(
        "acme", task["id"], {"name": "v2", "type": "DATA_PROCESSING", "config": {"expression": "b"}}
    )
    rolled = await agents.rollback_task("acme", task["id"], 1)
    assert (
        rolled["version"] == 3
        and rolled["name"] == "v1"
        and rolled["config"] == {"expression": "a"}
    )
    assert [v["version"] for v in await agents.task_versions("acme", task["id"])] == [3, 2, 1]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "x", "type": "NOPE"}, "type"),
        (
            {
                "name": "x",
                "type": "WORKFLOW_EMBEDDED",
                "config": {"steps": [{"step": 1, "target": "nope"}]},
            },
            "config.steps[0].target",
        ),
        ({"name": "x", "type": "WORKFLOW_TRIGGER", "config": {}}, "config.workflow_id"),
        (
            {
                "name": "x",
                "type": "API_CALL",
                "config": {"method": "PATCH", "url": "http://127.0.0.1"},
            },
            "config.method",
        ),
        ({"name": "x", "type": "API_CALL", "config": {}}, "config.url"),
        ({"name": "x", "type": "DATA_PROCESSING", "config": {}}, "config.expression"),
        (
            {
                "name": "x",
                "type": "DATA_PROCESSING",
                "config": {"expression": "@"},
                "triggers": [{"type": "CRON"}],
            },
            "triggers[0]",
        ),
        (
            {
                "name": "x",
                "type": "DATA_PROCESSING",
                "config": {"expression": "@"},
                "triggers": [{"type": "CRON", "cron": "0 0 25 * * ?"}],
            },
            "triggers[0].cron.hours",
        ),
        (
            {
                "name": "x",
                "type": "DATA_PROCESSING",
                "config": {"expression": "@"},
                "triggers": [{"type": "CRON", "cron": "0 0 1 * * ?", "timezone": "Mars/Base"}],
            },
            "triggers[0].timezone",
        ),
        ({"name": "x", "type": "WORKFLOW_EMBEDDED_ADHOC", "config": {}}, "type"),
        (
            {
                "name": "x",
                "type": "DATA_PROCESSING",
                "config": {"expression": "@"},
                "max_retries": 99,
            },
            "max_retries",
        ),
    ]
    for body, field in cases:
        with pytest.raises(ValidationError) as err:
            await agents.create_task("acme", agent["id"], body)
        assert err.value.field == field, (body, err.value.field, err.value.message)
    with pytest.raises(NotFound):
        await agents.get_task("other-team", task["id"])
    with pytest.raises(NotFound):
        await agents.create_task(
            "other-team",
            agent["id"],
            {"name": "x", "type": "DATA_PROCESSING", "config": {"expression": "@"}},
        )
    with pytest.raises(ValidationError) as err:
        await agents.new_task_execution("acme", task, depth=6)
    assert "cycle" in err.value.message
