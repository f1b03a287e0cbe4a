"""The claim fence (issue 17, part 1): a runner that goes on working after its execution was
claimed again — Ray restarted it on another node under the same runner id while the lost
node's process still ran — is refused at its next write and gives the execution up, so no step
completes twice (linqra/workflows/records.py, "Claims are numbered")."""

from __future__ import annotations

import asyncio
from typing import Any

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

TEAM = "team-fence"


async def _runs(system: System, execution_id: str) -> list[dict[str, Any]]:
    return await system.workflows.executions.step_runs(TEAM, execution_id)


async def test_a_runner_claimed_again_under_its_own_id_writes_no_step(system: System) -> None:
    wf = await system.workflows.create(
        TEAM,
        {
            "name": "fenced",
            "steps": [
                {"step": 1, "target": "wait", "params": {"seconds": 4}},
                {"step": 2, "target": "noop", "params": {"after": "{{step1.result}}"}},
            ],
        },
    )
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id)
    old = system.runner("linqra-runner")
    await old.submit(TEAM, ex["id"])

    async def step_one_running() -> bool:
        return any(r["status"] == "RUNNING" for r in await _runs(system, ex["id"]))

    await eventually(step_one_running, timeout=30)
    assert old.running() == [ex["id"]]

    # the same runner id started again (elsewhere) while the old process still runs the step
    new = system.runner("linqra-runner")

    async def reclaimed() -> dict[str, Any] | None:  # the reclaim is a compare-and-set on the
        await new.start(reap=False)  # heartbeat seen: one the old runner renews meanwhile loses
        doc = await system.workflows.executions.get(TEAM, ex["id"])
        return doc if doc["claim"] == 2 else None

    doc = await eventually(reclaimed, timeout=30)
    assert doc["auto_resumes"] == 1 and old.running() == [ex["id"]]  # still in its step

    record = await new.wait(TEAM, ex["id"], 60)
    assert record["status"] == "COMPLETED", record.get("error")

    async def old_gave_up() -> bool:
        return old.running() == []

    await eventually(old_gave_up, timeout=30)  # its step's end was refused: it stopped there
    runs = [(r["step"], r["run"], r["status"]) for r in await _runs(system, ex["id"])]
    assert runs == [(1, 1, "CANCELLED"), (1, 2, "COMPLETED"), (2, 1, "COMPLETED")]
    history = await system.workflows.executions.full_record(TEAM, ex["id"], history=True)
    assert history["steps"][0]["error"]["code"] == "interrupted"
    assert all("claim" not in step for step in history["steps"])  # internal, never shown
    final = await system.workflows.executions.get(TEAM, ex["id"])
    assert final["status"] == "COMPLETED" and final["claim"] == 2


async def test_an_old_claim_cannot_end_or_keep_alive_the_execution(system: System) -> None:
    """The execution's own record: the old claimant's heartbeat and its end are refused."""
    wf = await system.workflows.create(
        TEAM, {"name": "ended-once", "steps": [{"step": 1, "target": "noop"}]}
    )
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id)
    repo = system.workflows.executions
    await repo.transition(
        TEAM, ex["id"], {"status": "RUNNING", "runner_id": "r", "claim": 3},
        from_status=["PENDING"],
    )  # fmt: skip
    assert not await repo.heartbeat(TEAM, ex["id"], "r", claim=2)
    assert await repo.heartbeat(TEAM, ex["id"], "r", claim=3)
    ended = {"status": "FAILED"}
    assert not await repo.transition(
        TEAM, ex["id"], ended, from_status=["RUNNING"], runner_id="r", claim=2
    )
    assert (await repo.get(TEAM, ex["id"]))["status"] == "RUNNING"
    assert await repo.transition(
        TEAM, ex["id"], ended, from_status=["RUNNING"], runner_id="r", claim=3
    )


async def test_executions_claimed_before_claims_had_numbers_still_run(system: System) -> None:
    """Records written by an earlier version (no ``claim``) are claim 0: an upgraded runner
    adopts and ends them, over their step runs."""
    wf = await system.workflows.create(
        TEAM, {"name": "legacy", "steps": [{"step": 1, "target": "noop", "params": {"a": 1}}]}
    )
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id)
    repo = system.workflows.executions
    await repo.transition(
        TEAM, ex["id"], {"status": "RUNNING", "runner_id": "linqra-runner"},
        from_status=["PENDING"],
    )  # fmt: skip
    legacy_run = {"id": f"{ex['id']}:1:1", "execution_id": ex["id"], "step": 1, "run": 1,
                  "target": "noop", "status": "RUNNING", "started_at": ex["created_at"]}  # fmt: skip
    await repo.save_step_run(TEAM, legacy_run)
    runner = system.runner("linqra-runner")
    await runner.start(reap=False)
    record = await runner.wait(TEAM, ex["id"], 30)
    assert record["status"] == "COMPLETED" and record["claim"] == 1
    runs = [(r["run"], r["status"]) for r in await _runs(system, ex["id"])]
    assert runs == [(1, "CANCELLED"), (2, "COMPLETED")]
    await asyncio.gather(runner.close())


@pytest.mark.parametrize("held", ["QUEUED", "RUNNING"])
async def test_a_resume_leaves_a_queued_async_step_to_its_worker(system: System, held: str) -> None:
    """The runner was lost after it queued an async step: the runner that adopts the execution
    does not queue the step again (its message is still on the queue, or a worker runs it), so
    the step completes once — before, both runs completed (seen in B21 as 7 of 6)."""
    bus = MemoryEventBus(redeliver_after=0.3)
    worker = await bus.subscribe(ASYNC_TOPIC, ASYNC_GROUP, "w")
    wf = await system.workflows.create(TEAM, {"name": f"queued-{held}", "steps": [
        {"step": 1, "target": "noop", "async": True, "params": {"a": 1}},
        {"step": 2, "target": "wait", "params": {"seconds": 4}},
    ]})  # fmt: skip
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id)
    repo = system.workflows.executions
    old = system.runner("linqra-runner", async_queue=BusAsyncStepQueue(bus))
    await old.submit(TEAM, ex["id"])

    async def step_two_running() -> bool:
        return any(r["step"] == 2 and r["status"] == "RUNNING" for r in await _runs(system, ex["id"]))  # fmt: skip

    await eventually(step_two_running, timeout=30)
    (delivery,) = await worker.fetch(timeout=5)
    run_id = delivery.event.payload["record"]["id"]
    if held == "RUNNING":  # a worker has it, alive (its heartbeat is fresh)
        taken = {"status": "RUNNING", "worker": "w", "started_at": iso(), "heartbeat_at": iso()}
        assert await repo.claim_step_run(TEAM, run_id, taken, from_status="QUEUED")
    new = system.runner("linqra-runner", async_queue=BusAsyncStepQueue(bus))

    async def reclaimed() -> bool:
        await new.start(reap=False)
        return (await repo.get(TEAM, ex["id"]))["claim"] == 2

    await eventually(reclaimed, timeout=30)
    record = await new.wait(TEAM, ex["id"], 60)
    assert record["status"] == "COMPLETED" and record["pending_async_steps"] == [1]
    runs = [(r["step"], r["run"], r["status"]) for r in await _runs(system, ex["id"])]
    assert (1, 1, held) in runs and not any(s == 1 and n > 1 for s, n, _ in runs)
    again = await worker.fetch(timeout=0.5)  # the first message redelivered (never acked), only
    assert {d.event.payload["record"]["id"] for d in again} <= {run_id}
    if held == "QUEUED":  # the first message, run by a worker, ends it
        await process_async_step(delivery.event.payload, repo, system.registry, system.ctx)
        assert (await repo.full_record(TEAM, ex["id"]))["pending_async_steps"] == []
    await asyncio.gather(old.close(), new.close(), return_exceptions=True)


async def test_a_cancel_before_the_engine_began_ends_the_execution_at_once(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel that reaches the runner's task before its engine began (a cancel right after a
    resume) is recorded by the runner itself: the execution is not left RUNNING for the reaper
    (seen in CI: the client's wait outlived a keep-alive)."""
    wf = await system.workflows.create(
        TEAM, {"name": "early-cancel", "steps": [{"step": 1, "target": "noop"}]}
    )
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id)
    runner = system.runner("early-cancel")
    never = asyncio.Event()
    real = runner.engine.run

    async def not_begun(*args: Any, **kwargs: Any) -> dict[str, Any]:
        await never.wait()  # the task exists; its engine has not begun
        return await real(*args, **kwargs)

    monkeypatch.setattr(runner.engine, "run", not_begun)
    await runner.submit(TEAM, ex["id"])
    assert (await system.workflows.executions.get(TEAM, ex["id"]))["status"] == "RUNNING"
    record = await runner.cancel(TEAM, ex["id"])
    assert record["status"] == "CANCELLED" and record["error"]["code"] == "cancelled"
    assert runner.running() == []
