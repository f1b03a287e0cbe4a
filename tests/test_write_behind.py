"""Pure steps' records written behind (issue 15): grouped, yet nothing with an effect ever
starts on an unrecorded result, and a runner killed with records still held loses nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

from linqra.steps.base import ExecutorKind, StepCall, StepContext
from linqra.system import System
from linqra.workflows.definition import Step

TEAM = "team-wb"


class _Probe:
    """Not pure: counts the step records of its execution as it starts."""

    name, kind, url_intent, pure = "test-probe", "inline", False, False

    def validate(self, step: Step, field: str) -> None:
        return None

    async def run(self, call: StepCall, ctx: StepContext) -> Any:
        records = await ctx.system.workflows.executions.step_runs(call.team_id, call.execution_id)
        return sorted(r["step"] for r in records if r["status"] == "COMPLETED")


class _Gate:
    """Pure, passes its params through (in the doomed runner it blocks the whole process)."""

    name, url_intent, pure = "test-gate", False, True
    kind: ExecutorKind = "inline"

    def validate(self, step: Step, field: str) -> None:
        return None

    async def run(self, call: StepCall, ctx: StepContext) -> Any:
        return dict(call.params)


def _chain(n: int) -> list[dict[str, Any]]:
    """``n`` transforms, each adding one to the previous result's ``i``."""
    steps: list[dict[str, Any]] = [
        {"step": 1, "target": "transform", "params": {"expression": "{i: `1`}", "input": {}}}
    ]
    for i in range(2, n + 1):
        steps.append(
            {
                "step": i,
                "target": "transform",
                "params": {
                    "expression": f"{{i: `{i}`, prev: i}}",
                    "input": f"{{{{step{i - 1}.result}}}}",
                },
            }
        )
    return steps


async def test_a_step_with_an_effect_sees_every_earlier_record(system: System) -> None:
    system.registry.register(_Probe())
    wf = await system.workflows.create(
        TEAM, {"name": "probe", "steps": [*_chain(5), {"step": 6, "target": "test-probe"}]}
    )
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id)
    runner = system.runner("r1")
    await runner.submit(TEAM, ex["id"])
    record = await runner.wait(TEAM, ex["id"], 30)
    assert record["status"] == "COMPLETED", record.get("error")
    assert record["result"] == [1, 2, 3, 4, 5]  # all five were written before step 6 began
    assert [(s["step"], s["run"], s["status"]) for s in record["steps"]] == [
        *[(i, 1, "COMPLETED") for i in range(1, 7)]
    ]
    assert {s["executor"] for s in record["steps"]} == {"inline"}


async def test_a_pure_chain_is_recorded_in_full_by_its_end(system: System) -> None:
    wf = await system.workflows.create(TEAM, {"name": "chain", "steps": _chain(40)})
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id)
    runner = system.runner("r1")
    await runner.submit(TEAM, ex["id"])
    record = await runner.wait(TEAM, ex["id"], 30)
    assert record["status"] == "COMPLETED" and record["result"] == {"i": 40, "prev": 39}
    assert [s["step"] for s in record["steps"]] == list(range(1, 41))
    assert all(s["status"] == "COMPLETED" and s["inputs"] for s in record["steps"])


class _Held:
    """Pure, run by a worker (``kind: task``): answers once the test lets it."""

    name, url_intent, pure = "test-held", False, True
    kind: ExecutorKind = "task"

    def __init__(self) -> None:
        self.release = asyncio.Event()

    def validate(self, step: Step, field: str) -> None:
        return None

    async def run(self, call: StepCall, ctx: StepContext) -> Any:
        await self.release.wait()
        return dict(call.params)


async def test_a_pure_step_run_by_a_worker_is_recorded_behind_yet_seen_running(
    system: System,
) -> None:
    """A pure step that a worker runs has its end record written behind as an inline one's
    is; while it runs past the grace period its RUNNING record is written, after the
    records of the steps before it (a reader never sees it running without them)."""
    held = _Held()
    system.registry.register(held)
    steps = [
        *_chain(3),
        {"step": 4, "target": "test-held", "params": {"i": "{{step3.result.i}}"}},
        {"step": 5, "target": "noop", "executor": "task", "params": {"after": 4}},
    ]
    wf = await system.workflows.create(TEAM, {"name": "worker-pure", "steps": steps})
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id)
    executions = system.workflows.executions
    runner = system.runner("r1")
    await runner.submit(TEAM, ex["id"])
    deadline = time.monotonic() + 30
    while not (seen := await executions.step_runs(TEAM, ex["id"])) or seen[-1]["step"] != 4:
        assert time.monotonic() < deadline, f"step 4 never recorded running: {seen}"
        await asyncio.sleep(0.01)
    assert [(r["step"], r["status"]) for r in seen] == [
        (1, "COMPLETED"), (2, "COMPLETED"), (3, "COMPLETED"), (4, "RUNNING")
    ]  # fmt: skip
    assert seen[-1]["executor"] == "task"
    held.release.set()
    record = await runner.wait(TEAM, ex["id"], 30)
    assert record["status"] == "COMPLETED", record.get("error")
    assert [(s["step"], s["run"], s["status"], s["executor"]) for s in record["steps"]] == [
        *[(i, 1, "COMPLETED", "inline") for i in (1, 2, 3)],
        (4, 1, "COMPLETED", "task"),
        (5, 1, "COMPLETED", "task"),
    ]
    assert record["result"] == {"after": 4}


DOOMED_RUNNER = """
import asyncio, sys, time
from linqra.config import Settings
from linqra.system import System

class Gate:
    name, kind, url_intent, pure = "test-gate", "inline", False, True
    def validate(self, step, field): return None
    async def run(self, call, ctx):
        print("gate", flush=True)
        time.sleep(3600)  # blocks the loop: the held records cannot be written any more

async def main():
    system = await System.open(Settings.model_validate_json(sys.argv[1]))
    system.registry.register(Gate())
    await system.runner("doomed").submit(sys.argv[2], sys.argv[3])
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_runner_killed_with_records_held_loses_nothing(system: System) -> None:
    """Killed after five pure steps whose records it still held: the rescuer runs them again,
    to the same result, and every step has one record, run 1 — no gap, no double."""
    system.registry.register(_Gate())
    steps = [*_chain(5), {"step": 6, "target": "test-gate", "params": {"g": "{{step5.result.i}}"}}]
    steps.append(
        {
            "step": 7,
            "target": "transform",
            "params": {"expression": "g", "input": "{{step6.result}}"},
        }
    )
    wf = await system.workflows.create(TEAM, {"name": "doomed", "steps": steps})
    ex = await system.workflows.new_execution(TEAM, workflow_id=wf.id)
    executions = system.workflows.executions
    proc = subprocess.Popen(
        [sys.executable, "-c", DOOMED_RUNNER, system.settings.model_dump_json(), TEAM, ex["id"]],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "gate"
        held = await executions.step_runs(TEAM, ex["id"])
    finally:
        proc.kill()  # SIGKILL: no cleanup
        proc.wait(10)
    assert held == []  # steps 1-5 ran, their records were still held in the runner
    doc = await executions.get(TEAM, ex["id"])
    assert doc["status"] == "RUNNING" and doc["runner_id"] == "doomed"

    rescuer = system.runner("rescuer")
    deadline = time.monotonic() + 30
    while await rescuer.reap() == 0:  # until the doomed runner's heartbeat is stale
        assert time.monotonic() < deadline, "the orphan was never adopted"
        await asyncio.sleep(0.2)
    record = await rescuer.wait(TEAM, ex["id"], 30)
    assert record["status"] == "COMPLETED" and record["runner_id"] == "rescuer"
    assert record["result"] == 5
    history = await executions.full_record(TEAM, ex["id"], history=True)
    assert [(s["step"], s["run"], s["status"]) for s in history["steps"]] == [
        (i, 1, "COMPLETED") for i in range(1, 8)
    ]
