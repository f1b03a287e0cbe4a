"""`async: true` steps through a durable queue: queued by the engine, run by workers, redelivered
when a worker dies before acknowledging, never run twice once finished."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from linqra.clock import iso
from linqra.events.memory import MemoryEventBus
from linqra.system import System
from linqra.workflows.async_steps import (
    ASYNC_GROUP,
    ASYNC_TOPIC,
    BusAsyncStepQueue,
    process_async_step,
)
from tests.support.http import eventually

TEAM = "team-async"


async def test_queued_async_step_is_finished_by_a_worker_after_a_crash(
    system: System, http_service: Any
) -> None:
    bus = MemoryEventBus(redeliver_after=0.3)
    crashed = await bus.subscribe(ASYNC_TOPIC, ASYNC_GROUP, "worker-a")  # joins before the publish
    runner = system.runner("async-test", async_queue=BusAsyncStepQueue(bus))
    definition = system.workflows.validate_definition({"steps": [
        {"step": 1, "target": "noop", "params": {"a": 1}},
        {"step": 2, "target": "http", "action": "fetch", "intent": f"{http_service.url}/echo/{{{{params.x}}}}", "async": True},
        {"step": 3, "target": "noop", "params": {"b": 2}},
    ]})  # fmt: skip
    ex = await system.workflows.new_execution(TEAM, definition=definition, params={"x": "hi"})
    await runner.submit(TEAM, ex["id"])
    record = await runner.wait(TEAM, ex["id"], 30)
    assert record["status"] == "COMPLETED" and record["pending_async_steps"] == [2]
    queued = {s["step"]: s for s in record["steps"]}[2]
    assert queued["status"] == "QUEUED" and queued["inputs"]["intent"].endswith("/echo/hi")

    taken = await crashed.fetch(timeout=2)  # worker A takes it and dies before finishing
    assert len(taken) == 1
    await crashed.close()
    repo = system.workflows.executions
    worker_b = await bus.subscribe(ASYNC_TOPIC, ASYNC_GROUP, "worker-b")
    again = await worker_b.fetch(timeout=3)
    assert [d.event.id for d in again] == [taken[0].event.id] and again[0].attempt == 2
    status = await process_async_step(
        again[0].event.payload, repo, system.registry, system.ctx, worker="worker-b"
    )
    await worker_b.ack(again[0])
    assert status == "COMPLETED"
    done = await repo.full_record(TEAM, ex["id"])
    step = {s["step"]: s for s in done["steps"]}[2]
    assert (
        done["pending_async_steps"] == []
        and step["status"] == "COMPLETED"
        and step["output"]["path"] == "/echo/hi"
    )
    assert step["worker"] == "worker-b"
    # the first worker's message delivered once more (it was never acknowledged) runs nothing
    assert (
        await process_async_step(taken[0].event.payload, repo, system.registry, system.ctx)
        == "duplicate"
    )


@pytest.mark.ray
def test_async_steps_run_on_the_worker_actors(gateway_url: str, http_service: Any) -> None:
    with httpx.Client(base_url=gateway_url, headers={"X-Team-Id": TEAM}, timeout=60) as api:
        wf = api.post("/v1/workflows", json={"name": "with async", "steps": [
            {"step": 1, "target": "noop"},
            {"step": 2, "target": "http", "action": "fetch", "intent": f"{http_service.url}/sleep", "params": {"ms": 500}, "async": True},
        ]}).json()  # fmt: skip
        record = api.post(
            f"/v1/workflows/{wf['id']}/execute", params={"wait": "true"}, json={}
        ).json()
        assert record["status"] == "COMPLETED" and record["pending_async_steps"] == [2]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            later = api.get(f"/v1/executions/{record['id']}").json()
            if not later["pending_async_steps"]:
                break
            time.sleep(0.2)
        step = {s["step"]: s for s in later["steps"]}[2]
        assert later["pending_async_steps"] == [] and step["status"] == "COMPLETED"
        assert step["worker"].startswith("linqra-async-")


async def test_a_lost_queue_message_is_requeued_and_run_once(
    system: System, http_service: Any
) -> None:
    """The queue lost the message (the embedded bus's actor restarted): the reaper publishes the
    step again from its QUEUED record; two copies in flight still run it once (claim by CAS)."""
    lost = MemoryEventBus(redeliver_after=0.3)  # published to, then "restarted": never consumed
    runner = system.runner("async-lost", async_queue=BusAsyncStepQueue(lost))
    definition = system.workflows.validate_definition({"steps": [
        {"step": 1, "target": "noop"},
        {"step": 2, "target": "http", "action": "fetch", "intent": f"{http_service.url}/counter", "async": True},
    ]})  # fmt: skip
    ex = await system.workflows.new_execution(TEAM, definition=definition)
    await runner.submit(TEAM, ex["id"])
    assert (await runner.wait(TEAM, ex["id"], 30))["pending_async_steps"] == [2]
    fresh = MemoryEventBus(redeliver_after=0.3)
    worker = await fresh.subscribe(ASYNC_TOPIC, ASYNC_GROUP, "w")
    repo = system.workflows.executions
    await asyncio.sleep(0.3)
    assert await BusAsyncStepQueue(fresh).requeue_lost(repo, older_than_seconds=0.1) == 1
    assert (
        await BusAsyncStepQueue(fresh).requeue_lost(repo, older_than_seconds=0.0) == 1
    )  # a 2nd copy
    copies = await worker.fetch(timeout=2)
    assert len(copies) == 2
    results = await asyncio.gather(
        *(process_async_step(d.event.payload, repo, system.registry, system.ctx) for d in copies)
    )
    # the second copy finds the step claimed ("busy") or, when the first already finished it
    # before the second was read, done ("duplicate"): either way it does not run it again
    assert sorted(results) in (["COMPLETED", "busy"], ["COMPLETED", "duplicate"])
    done = await repo.full_record(TEAM, ex["id"])
    assert done["pending_async_steps"] == [] and "queued_call" not in done["steps"][1]


async def _queued_wait(system: System, runner_id: str, *, seconds: float) -> tuple[str, Any]:
    """An execution of one async ``wait`` step, queued on a bus of its own: the run's id and
    the message a worker takes."""
    bus = MemoryEventBus(redeliver_after=0.3)
    worker = await bus.subscribe(ASYNC_TOPIC, ASYNC_GROUP, "w")
    runner = system.runner(runner_id, async_queue=BusAsyncStepQueue(bus))
    definition = system.workflows.validate_definition(
        {"steps": [{"step": 1, "target": "wait", "async": True, "params": {"seconds": seconds}}]}
    )
    ex = await system.workflows.new_execution(TEAM, definition=definition)
    await runner.submit(TEAM, ex["id"])
    await runner.wait(TEAM, ex["id"], 30)
    (delivery,) = await worker.fetch(timeout=2)
    return str(delivery.event.payload["record"]["id"]), delivery.event.payload


async def test_a_running_worker_keeps_its_step_by_its_heartbeat(system: System) -> None:
    """A step that runs longer than the staleness limit is not taken over while its worker
    lives: the worker renews the run's heartbeat."""
    run_id, payload = await _queued_wait(system, "async-alive", seconds=4)
    repo = system.workflows.executions
    beats = {"heartbeat_seconds": 0.2, "stale_after_seconds": 1.5}
    first = asyncio.create_task(
        process_async_step(payload, repo, system.registry, system.ctx, worker="w1", **beats)
    )
    seen: set[str] = set()
    while not first.done():  # others are kept off for the whole 4 s, over two staleness limits
        current = await repo.step_run(TEAM, run_id)
        if current and current["status"] == "RUNNING":
            seen.add(current["heartbeat_at"])
            second = await process_async_step(
                payload, repo, system.registry, system.ctx, worker="w2", **beats
            )
            assert second in ("busy", "duplicate")
        await asyncio.sleep(0.05)
    assert await first == "COMPLETED" and len(seen) >= 5  # renewed all along
    assert (await repo.step_run(TEAM, run_id))["worker"] == "w1"


async def test_a_worker_whose_run_was_interrupted_drops_its_outcome(system: System) -> None:
    """The execution was resumed (its RUNNING async run interrupted, a new one queued) while a
    worker still ran the old run: that worker's outcome is dropped, not a second completion."""
    run_id, payload = await _queued_wait(system, "async-interrupted", seconds=3)
    repo = system.workflows.executions
    running = asyncio.create_task(
        process_async_step(payload, repo, system.registry, system.ctx, worker="w1")
    )

    async def started() -> bool:
        return ((await repo.step_run(TEAM, run_id)) or {}).get("status") == "RUNNING"

    await eventually(started, timeout=10)
    interrupted = {"status": "CANCELLED", "error": {"code": "interrupted", "message": "resumed"}}
    assert await repo.store_update_step_run(TEAM, run_id, interrupted, where={"status": "RUNNING"})
    assert not running.done()  # interrupted while it ran
    assert await running == "duplicate"
    assert (await repo.step_run(TEAM, run_id))["status"] == "CANCELLED"


async def test_a_step_held_by_a_dead_worker_is_taken_over_when_stale(system: System) -> None:
    bus = MemoryEventBus(redeliver_after=0.3)
    worker = await bus.subscribe(ASYNC_TOPIC, ASYNC_GROUP, "w")
    runner = system.runner("async-dead", async_queue=BusAsyncStepQueue(bus))
    definition = system.workflows.validate_definition(
        {"steps": [{"step": 1, "target": "noop", "async": True, "timeoutSeconds": 5}]}
    )
    ex = await system.workflows.new_execution(TEAM, definition=definition)
    await runner.submit(TEAM, ex["id"])
    await runner.wait(TEAM, ex["id"], 30)
    (delivery,) = await worker.fetch(timeout=2)
    repo = system.workflows.executions
    run_id = delivery.event.payload["record"]["id"]
    # a worker claimed it and died: RUNNING, its heartbeat recent → busy; stale → taken over
    # (its last heartbeat counts, not when it started: the step's 5 s timeout plays no part)
    long_ago = "2026-01-01T00:00:00.000000Z"
    await repo.claim_step_run(TEAM, run_id, {"status": "RUNNING", "started_at": long_ago, "heartbeat_at": iso(), "worker": "dead"}, from_status="QUEUED")  # fmt: skip
    payload = delivery.event.payload
    take = {"worker": "w2", "stale_after_seconds": 2.0}
    assert await process_async_step(payload, repo, system.registry, system.ctx, **take) == "busy"
    stale = datetime.now(UTC) - timedelta(seconds=3)
    await repo.store_update_step_run(TEAM, run_id, {"heartbeat_at": iso(stale)}, where={})
    assert (
        await process_async_step(payload, repo, system.registry, system.ctx, **take) == "COMPLETED"
    )
    assert (await repo.step_run(TEAM, run_id))["worker"] == "w2"
