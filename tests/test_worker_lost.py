"""A step whose worker is lost (issue 17, part 1: its node died under a live runner) is sent
again, and fails with ``worker_lost`` only when every try lost its worker — never an
``engine_error`` with sibling steps left RUNNING. On Ray: tests/test_serve_gateway.py
``test_io_workers_killed_mid_step_run_their_steps_again``."""

from __future__ import annotations

import pickle

from linqra.steps.base import StepCall, WorkerLost
from linqra.steps.runtime import StepOutcome
from linqra.system import System
from linqra.workflows.engine import LocalExecutor
from linqra.workflows.records import ClaimLost

TEAM = "team-lost"


class LosingExecutor(LocalExecutor):
    """Runs calls in process, after losing the worker of the first ``losses`` of them."""

    def __init__(self, system: System, losses: int, *, restarting: bool = False) -> None:
        super().__init__(system.registry, system.ctx)
        self.losses, self.restarting, self.calls = losses, restarting, 0

    async def execute(self, call: StepCall) -> StepOutcome:
        self.calls += 1
        if self.calls <= self.losses:
            raise WorkerLost("ActorDiedError: the node died", restarting=self.restarting)
        return await super().execute(call)


async def _run(system: System, executor: LosingExecutor, steps: list[dict]) -> dict:
    ex = await system.workflows.new_execution(
        TEAM, definition=system.workflows.validate_definition({"mode": "dag", "steps": steps})
    )
    runner = system.runner("lost-workers", executor)
    await runner.submit(TEAM, ex["id"])
    record = await runner.wait(TEAM, ex["id"], 30)
    return {**record, "history": await system.workflows.executions.step_runs(TEAM, ex["id"])}


async def test_a_step_whose_worker_was_lost_runs_again(system: System) -> None:
    executor = LosingExecutor(system, losses=3, restarting=True)  # Ray restarting the worker
    record = await _run(system, executor, [
        {"step": 1, "target": "wait", "executor": "io", "params": {"seconds": 0.01}},
    ])  # fmt: skip
    assert record["status"] == "COMPLETED" and executor.calls == 4
    assert [(r["run"], r["status"]) for r in record["history"]] == [(1, "COMPLETED")]


async def test_a_step_that_loses_every_worker_fails_alone(system: System) -> None:
    executor = LosingExecutor(system, losses=100)
    record = await _run(system, executor, [
        {"step": 1, "target": "wait", "executor": "io", "params": {"seconds": 0.01},
         "retry": {"maxAttempts": 3, "initialDelayMs": 10}},
        {"step": 2, "target": "noop", "params": {"after": "{{step1.result}}"}},
    ])  # fmt: skip
    assert executor.calls == 3  # the step's attempts (at least two tries)
    assert record["status"] == "FAILED" and record["error"]["code"] == "worker_lost"
    runs = {r["step"]: r for r in record["history"]}
    assert runs[1]["status"] == "FAILED" and runs[1]["error"]["code"] == "worker_lost"
    assert runs[2]["status"] == "SKIPPED"  # not RUNNING, not an engine error


def test_the_errors_that_cross_ray_keep_their_fields_when_pickled() -> None:
    """Ray pickles an exception raised in an actor: ``restarting`` (keyword-only) and a lost
    claim's execution id must survive the trip, not fall back to defaults or the message."""
    lost = pickle.loads(pickle.dumps(WorkerLost("the node died", restarting=True)))
    assert (str(lost), lost.restarting) == ("the node died", True)
    claim = pickle.loads(pickle.dumps(ClaimLost("ex_1")))
    assert claim.execution_id == "ex_1" and str(claim) == str(ClaimLost("ex_1"))
