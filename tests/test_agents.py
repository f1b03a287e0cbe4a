"""Agents, versioned tasks of every type and task executions, in process (the runner as a port)."""

from __future__ import annotations

import asyncio
import contextlib
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


async def run(agents: Any, runner: Any, task: Any, **kwargs: Any) -> dict[str, Any]:
    tx, created = await agents.new_task_execution("acme", task, **kwargs)
    assert created
    return await agents.run_task_execution("acme", tx["id"], runner)


async def test_every_task_type_runs_as_a_recorded_workflow(
    setup: Any, system: System, http_service: Any
) -> None:
    agents, runner, agent = setup
    embedded = await agents.create_task("acme", agent.id, {
        "name": "fetch person", "type": "WORKFLOW_EMBEDDED",
        "config": {"steps": [{"step": 1, "target": "quotes-service", "action": "fetch", "intent": "/api/people/random"}]},
    })  # fmt: skip
    done = await run(agents, runner, embedded)
    assert done["status"] == "COMPLETED" and done["result"]["fullName"] and done["attempts"] == 1
    record = await system.workflows.executions.full_record("acme", done["execution_ids"][0])
    assert record["source"] == "task" and record["steps"][0]["target"] == "quotes-service"

    wf = await system.workflows.create("acme", {"name": "echo", "steps": [
        {"step": 1, "target": "transform", "params": {"expression": "upper", "input": "{{params}}"}}]})  # fmt: skip
    trigger = await agents.create_task("acme", agent.id, {
        "name": "run workflow", "type": "WORKFLOW_TRIGGER", "config": {"workflow_id": wf.id, "params": {"upper": "A"}},
    })  # fmt: skip
    assert (await run(agents, runner, trigger, input={"upper": "B"}))["result"] == "B"

    api = await agents.create_task("acme", agent.id, {
        "name": "call api", "type": "API_CALL",
        "config": {"method": "POST", "service": "quotes-service", "path": "/echo/orders/{{params.id}}",
                   "headers": {"X-Trace": "t-{{params.id}}"}, "query": {"q": "{{params.id}}"},
                   "body": {"order": "{{params.id}}", "note": "hi"}},
    })  # fmt: skip
    echoed = (await run(agents, runner, api, input={"id": 42}))["result"]
    assert echoed["method"] == "POST" and echoed["path"] == "/echo/orders/42"
    assert echoed["query"] == {"q": "42"} and echoed["headers"]["x-trace"] == "t-42"
    assert json.loads(echoed["body"]) == {"order": 42, "note": "hi"}
    direct = await agents.create_task("acme", agent.id, {
        "name": "call url", "type": "API_CALL",
        "config": {"method": "GET", "url": f"{http_service.url}/api/people"},
    })  # fmt: skip
    assert len((await run(agents, runner, direct))["result"]["people"]) == 3

    data = await agents.create_task("acme", agent.id, {
        "name": "sum", "type": "DATA_PROCESSING", "config": {"expression": "sum(values)"},
    })  # fmt: skip
    assert (await run(agents, runner, data, input={"values": [1, 2, 3.5]}))["result"] == 6.5

    adhoc = {
        "type": "WORKFLOW_EMBEDDED_ADHOC",
        "config": {"steps": [{"step": 1, "target": "noop"}]},
    }
    assert (await run(agents, runner, adhoc))["status"] == "COMPLETED"
    listed, total = await agents.list_task_executions("acme", agent_id=agent.id)
    assert total == 5 and all(t["status"] == "COMPLETED" for t in listed)


async def test_retries_with_backoff_then_failure_is_recorded(setup: Any) -> None:
    agents, runner, agent = setup
    task = await agents.create_task("acme", agent.id, {
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
    slow = await agents.create_task("acme", agent.id, {
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
        "acme", agent.id, {"name": "n", "type": "DATA_PROCESSING", "config": {"expression": "@"}}
    )
    first, new1 = await agents.new_task_execution(
        "acme", task, idempotency_key="cron:x:2026-11-24T10:00:00Z"
    )
    second, new2 = await agents.new_task_execution(
        "acme", task, idempotency_key="cron:x:2026-11-24T10:00:00Z"
    )
    assert new1 and not new2 and first["id"] == second["id"]


async def test_versions_rollback_and_bad_input(setup: Any, system: System) -> None:
    agents, _, agent = setup
    task = await agents.create_task(
        "acme",
        agent.id,
        {"name": "v1", "type": "DATA_PROCESSING", "config": {"expression": "a"}},
    )
    await agents.update_task(
        "acme", task.id, {"name": "v2", "type": "DATA_PROCESSING", "config": {"expression": "b"}}
    )
    rolled = await agents.rollback_task("acme", task.id, 1)
    assert rolled.version == 3 and rolled.name == "v1" and rolled.config == {"expression": "a"}
    assert [v.version for v in await agents.task_versions("acme", task.id)] == [3, 2, 1]
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
            await agents.create_task("acme", agent.id, body)
        assert err.value.field == field, (body, err.value.field, err.value.message)
    # another team's workflow (or none): 404 like any id not the team's, naming the task's field
    theirs = {"name": "theirs", "steps": [{"step": 1, "target": "noop"}]}
    other = await system.workflows.create("other-team", theirs)
    for workflow_id in (other.id, "wf_nope"):
        body = {"name": "x", "type": "WORKFLOW_TRIGGER", "config": {"workflow_id": workflow_id}}
        with pytest.raises(NotFound) as missing:
            await agents.create_task("acme", agent.id, body)
        assert missing.value.field == "config.workflow_id"
    with pytest.raises(NotFound):
        await agents.get_task("other-team", task.id)
    with pytest.raises(NotFound):
        await agents.create_task(
            "other-team",
            agent.id,
            {"name": "x", "type": "DATA_PROCESSING", "config": {"expression": "@"}},
        )
    with pytest.raises(ValidationError) as err:
        await agents.new_task_execution("acme", task, depth=6)
    assert "cycle" in err.value.message


# -- the scheduler, driven with explicit times -----------------------------------------------
async def test_cron_schedules_fire_once_per_time_and_survive_restarts(
    setup: Any, system: System
) -> None:
    from datetime import timedelta

    from linqra.scheduling.scheduler import Scheduler, parse_instant

    agents, _, agent = setup
    dispatched: list[str] = []

    async def dispatch(team: str, agent_id: str, tx_id: str, priority: int) -> None:
        dispatched.append(tx_id)

    scheduler = Scheduler(agents, system.settings.agents, dispatch)
    task = await agents.create_task("acme", agent.id, {
        "name": "every 10 s", "type": "DATA_PROCESSING", "config": {"expression": "@"},
        "triggers": [{"type": "CRON", "cron": "*/10 * * * * ?", "timezone": "Europe/Paris"}],
    })  # fmt: skip
    schedule = task.schedules[0]
    due = parse_instant(schedule.next_fire_at)
    assert due.second % 10 == 0 and due.microsecond == 0
    assert await scheduler.tick(due - timedelta(milliseconds=1)) == 0  # not yet
    assert await scheduler.tick(due + timedelta(milliseconds=5)) == 1
    assert await scheduler.tick(due + timedelta(milliseconds=6)) == 0  # advanced: no double
    # a second scheduler (or a restarted one) replaying the same fire creates nothing new
    stale_copy = {**schedule.model_dump(), "team_id": "acme"}
    assert not await scheduler.fire(stale_copy, due + timedelta(milliseconds=7))
    assert len(dispatched) == 1
    tx = await agents.get_task_execution("acme", dispatched[0])
    assert tx["trigger"]["type"] == "CRON" and tx["trigger"]["scheduled_at"].startswith(
        due.strftime("%Y-%m-%dT%H:%M:%S")
    )
    current = (await agents.describe_task("acme", task.id)).schedules[0]
    assert parse_instant(current.next_fire_at) == due + timedelta(seconds=10)

    # the scheduler was down for two minutes: FIRE_ONCE_NOW fires once and continues from now
    later = due + timedelta(seconds=130)
    assert await scheduler.tick(later) == 1
    after = (await agents.describe_task("acme", task.id)).schedules[0]
    assert parse_instant(after.next_fire_at) > later and after.misfires == 1

    # SKIP fires nothing for a misfire
    await agents.update_task("acme", task.id, {
        "name": "every 10 s", "type": "DATA_PROCESSING", "config": {"expression": "@"},
        "triggers": [{"type": "CRON", "cron": "*/10 * * * * ?", "misfire_policy": "SKIP"}],
    })  # fmt: skip
    skip = await agents.get_task("acme", task.id)
    sched = (await agents.describe_task("acme", skip.id)).schedules[0]
    assert await scheduler.tick(parse_instant(sched.next_fire_at) + timedelta(seconds=300)) == 0

    # paused: nothing fires; resumed: from now on, no catch-up
    await agents.set_enabled("acme", task.id, paused=True)
    assert await scheduler.tick(later + timedelta(days=1)) == 0
    resumed = await agents.set_enabled("acme", task.id, paused=False)
    assert resumed.schedules[0].active and len(dispatched) == 2
    await agents.delete_task("acme", task.id)
    assert await system.store.find("schedules", "acme", {"task_id": task.id}) == []


async def test_schedule_on_startup_fires_at_once(setup: Any, system: System) -> None:
    from datetime import UTC, datetime

    from linqra.scheduling.scheduler import Scheduler

    agents, _, agent = setup
    fired: list[str] = []

    async def dispatch(team: str, agent_id: str, tx_id: str, priority: int) -> None:
        fired.append(tx_id)

    await agents.create_task("acme", agent.id, {
        "name": "daily", "type": "DATA_PROCESSING", "config": {"expression": "@"},
        "triggers": [{"type": "CRON", "cron": "0 0 3 * * ?", "schedule_on_startup": True}],
    })  # fmt: skip
    assert await Scheduler(agents, system.settings.agents, dispatch).tick(datetime.now(UTC)) == 1


async def test_the_scheduler_sleeps_until_its_next_fire_and_wakes_for_a_saved_schedule(
    setup: Any, system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle scheduler reads the store twice a :data:`WATCH_SECONDS` (not every 20 ms), sleeps
    until a fire it knows of, and looks again at once when the trigger book saves a schedule."""
    from datetime import datetime, timedelta

    from linqra.scheduling import scheduler as module
    from linqra.scheduling.scheduler import Scheduler, parse_instant

    agents, _, agent = setup
    fired = asyncio.Event()

    async def dispatch(team: str, agent_id: str, tx_id: str, priority: int) -> None:
        fired.set()

    scheduler = Scheduler(agents, system.settings.agents, dispatch)
    assert await scheduler.pause() == module.WATCH_SECONDS  # nothing scheduled
    task = await agents.create_task("acme", agent.id, {
        "name": "every 10 s", "type": "DATA_PROCESSING", "config": {"expression": "@"},
        "triggers": [{"type": "CRON", "cron": "*/10 * * * * ?"}],
    })  # fmt: skip
    due = parse_instant(task.schedules[0].next_fire_at)
    assert await scheduler.pause(due - timedelta(seconds=5)) == module.WATCH_SECONDS
    assert await scheduler.pause(due - timedelta(seconds=0.3)) == pytest.approx(0.302)
    assert await scheduler.pause(due) == module.POLL_SECONDS  # due now: at once
    await agents.delete_task("acme", task.id)

    # a loop that would sleep a minute finds a schedule saved meanwhile at once when woken
    monkeypatch.setattr(module, "WATCH_SECONDS", 60.0)
    agents.triggers.on_schedule = scheduler.wake
    looked, pause = asyncio.Event(), scheduler.pause

    async def first_pause(now: datetime | None = None) -> float:
        seconds = await pause(now)
        looked.set()
        return seconds

    monkeypatch.setattr(scheduler, "pause", first_pause)
    loop = asyncio.create_task(scheduler.run_forever())
    try:
        await asyncio.wait_for(looked.wait(), 10)  # it found an empty book: asleep for 60 s
        await agents.create_task("acme", agent.id, {
            "name": "daily", "type": "DATA_PROCESSING", "config": {"expression": "@"},
            "triggers": [{"type": "CRON", "cron": "0 0 3 * * ?", "schedule_on_startup": True}],
        })  # fmt: skip
        await asyncio.wait_for(fired.wait(), 10)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def test_waiting_for_a_task_execution_is_told_not_polled(setup: Any, system: System) -> None:
    """``RunService.wait_task_execution`` hears the end from what runs the task execution (here
    the in-process launcher; on Ray the agent actor): two reads of the record, however long it
    runs, where polling would read it every 50-500 ms."""
    agents, _, agent = setup
    task = await agents.create_task("acme", agent.id, {
        "name": "slow", "type": "WORKFLOW_EMBEDDED",
        "config": {"steps": [{"step": 1, "target": "wait", "params": {"seconds": 1.5}}]},
    })  # fmt: skip
    reads: list[str] = []
    get = system.store.get

    async def counting_get(collection: str, team_id: str, doc_id: str) -> Any:
        if asyncio.current_task() is waiter and collection == "task_executions":
            reads.append(doc_id)  # the waiter's reads only, not the run's own
        return await get(collection, team_id, doc_id)

    tx = await system.runs.run_task("acme", task.id, trigger={"type": "MANUAL"})
    system.store.get = counting_get  # type: ignore[method-assign]
    try:
        waiter = asyncio.ensure_future(system.runs.wait_task_execution("acme", tx["id"], 30))
        done = await waiter
    finally:
        system.store.get = get  # type: ignore[method-assign]
    assert done["status"] == "COMPLETED"
    assert len(reads) == 2, reads
