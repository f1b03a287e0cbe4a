"""A pure step worked out without an event loop (``run_pure_now``, what a warm CPU-step worker
does first): the same outcome as the usual path where it can answer, ``None`` — the usual path
then runs the step — where it cannot."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from linqra.status import StepStatus
from linqra.steps.base import ExecutorKind, StepCall, StepContext, TargetRegistry
from linqra.steps.runtime import run_pure_now, run_step_call
from linqra.system import System


def _call(target: str, params: dict[str, Any], **changes: Any) -> StepCall:
    call = StepCall(
        "ex_1", "team-pure", 3, target, None, None, params, None, {}, None, False, "task",
        10.0, 3, 0.01, 0.01, 2.0,
    )  # fmt: skip
    return dataclasses.replace(call, **changes)


async def test_a_pure_step_gives_the_outcome_the_usual_path_gives(system: System) -> None:
    for call in (
        _call("noop", {"a": [1, "two"]}),
        _call("transform", {"expression": "items[?n > `1`].n",
                            "input": {"items": [{"n": 1}, {"n": 2}]}}),
    ):  # fmt: skip
        now = run_pure_now(call, system.registry, system.ctx)
        usual = await run_step_call(call, system.registry, system.ctx)
        assert now is not None
        assert (now.status, now.output, now.error, now.attempts) == (
            usual.status, usual.output, usual.error, usual.attempts,
        )  # fmt: skip
        assert now.started_at <= now.finished_at and now.duration_ms >= 0


async def test_what_it_cannot_answer_goes_the_usual_way(system: System) -> None:
    limit = system.settings.execution.max_step_output_bytes
    cases = {
        "not pure": _call("wait", {"seconds": 0}),
        "fails (its error's shape is the usual path's)": _call(
            "transform", {"expression": "abs(@)", "input": "text"}
        ),
        "too large an output": _call("noop", {"big": "x" * (limit + 1)}),
    }
    for why, call in cases.items():
        assert run_pure_now(call, system.registry, system.ctx) is None, why
    failed = await run_step_call(cases["fails (its error's shape is the usual path's)"],
                                 system.registry, system.ctx)  # fmt: skip
    assert failed.status == StepStatus.FAILED
    assert failed.error and failed.error["code"] == "transform_failed"
    too_large = await run_step_call(cases["too large an output"], system.registry, system.ctx)
    assert too_large.error and too_large.error["code"] == "output_too_large"


class _Awaits:
    """Says it is pure but awaits: only an event loop can run it."""

    name = "awaits"
    kind: ExecutorKind = "task"
    url_intent, pure = False, True

    def validate(self, step: Any, field: str) -> None:
        return None

    async def run(self, call: StepCall, ctx: StepContext) -> Any:
        await asyncio.sleep(0)
        return "after a turn of the loop"


async def test_a_target_that_awaits_is_left_to_the_loop(system: System) -> None:
    registry = TargetRegistry([_Awaits()])
    assert run_pure_now(_call("awaits", {}), registry, system.ctx) is None
    usual = await run_step_call(_call("awaits", {}), registry, system.ctx)
    assert usual.status == StepStatus.COMPLETED and usual.output == "after a turn of the loop"
