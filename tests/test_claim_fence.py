"""The claim fence (issue 17, part 1): a runner that goes on working after its execution was
claimed again — Ray restarted it on another node under the same runner id while the lost
node's process still ran — is refused at its next write and gives the execution up, so no step
completes twice (linqra/workflows/records.py, "Claims are numbered")."""

from __future__ import annotations

import asyncio
from typing import Any

from linqra.system import System
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
