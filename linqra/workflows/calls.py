"""What the engine hands an executor for one step: the :class:`~linqra.steps.base.StepCall` with
its inputs resolved from the params and earlier results, and the step-cache key of that call.

Kept apart from :mod:`linqra.workflows.engine`, which decides when steps run and records them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from linqra.clock import iso
from linqra.config import ExecutionSettings
from linqra.metrics import Metrics, record_step
from linqra.resilience import Backoff
from linqra.status import StepStatus
from linqra.steps.base import ExecutorKind, StepCall, WorkerLost
from linqra.steps.runtime import StepOutcome
from linqra.tracing import annotate, traceparent
from linqra.tracing import recording as tracing_recording
from linqra.workflows.definition import Step
from linqra.workflows.interpolation import Scope, render, render_text
from linqra.workflows.step_runs import RunState

__all__ = ["cache_key", "canonical_json", "execute", "observe_step", "step_call"]

log = logging.getLogger(__name__)


def step_call(
    run: RunState,
    step: Step,
    scope: Scope,
    settings: ExecutionSettings,
    *,
    url_intent: bool,
    kind: ExecutorKind,
) -> StepCall:
    """``step`` of ``run`` with its templates resolved in ``scope`` (raises
    :class:`~linqra.workflows.interpolation.MissingReference` for a reference to nothing)."""
    encode: Callable[[str], str] | None = (lambda s: quote(s, safe="")) if url_intent else None
    retry = step.retry
    return StepCall(
        execution_id=run.execution_id,
        team_id=run.team_id,
        step=step.step,
        target=step.target,
        action=step.action,
        intent=None if step.intent is None else render_text(step.intent, scope, encode=encode),
        params=render(step.params, scope),
        payload=render(step.payload, scope),
        headers={k: str(v) for k, v in render(step.headers or {}, scope).items()},
        llm_config=render(step.llmConfig, scope),
        stream=step.stream,
        kind=step.executor or kind,
        timeout=step.timeoutSeconds or settings.default_step_timeout_seconds,
        max_attempts=retry.maxAttempts if retry else settings.default_max_attempts,
        backoff_initial=(retry.initialDelayMs if retry else 200) / 1000,
        backoff_max=(retry.maxDelayMs if retry else 10_000) / 1000,
        backoff_multiplier=retry.multiplier if retry else 2.0,
        executed_by=run.executed_by,
        trace=traceparent(),
    )


def cache_key(run: RunState, step: Step, call: StepCall, scope: Scope) -> str | None:
    """The step cache's key for ``call`` (its ``cacheConfig.key``, else its inputs), or
    ``None`` when the step is not cached."""
    config = step.cacheConfig
    if config is None or not config.enabled:
        return None
    if config.key:
        basis = render_text(config.key, scope)
    else:
        basis = canonical_json(
            {
                "target": call.target,
                "action": call.action,
                "intent": call.intent,
                "params": call.params,
                "payload": call.payload,
                "llm": call.llm_config,
            }
        )
    digest = hashlib.sha256(basis.encode()).hexdigest()
    return f"linqra:step:{run.team_id}:{digest}"


def canonical_json(value: Any) -> str:
    """One text per value (sorted keys, compact): what the step cache stores and hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


LOST_WORKER_WAIT_SECONDS = 60.0
"""How long a step waits for a worker to be started again after its own was lost (beyond its
timeout, if that is longer): Ray restarts a lost node's actors on another within seconds."""


async def execute(run_once: Callable[[], Awaitable[StepOutcome]], call: StepCall) -> StepOutcome:
    """``run_once()`` — the call on its executor — again each time the worker running it is lost
    (:class:`~linqra.steps.base.WorkerLost`), as often as the step's attempts allow and at least
    once more — a lost worker re-runs its step as a lost runner's resume does — with a growing,
    jittered pause while the worker is being started again (for at most
    :data:`LOST_WORKER_WAIT_SECONDS`, or the step's timeout, from the first loss). Then the step
    fails with ``worker_lost`` rather than crashing its execution."""
    started, t0 = iso(), time.monotonic()
    tries, lost_count, pauses = max(2, call.max_attempts), 0, 0
    deadline: float | None = None
    while True:
        try:
            return await run_once()
        except WorkerLost as exc:
            lost, lost_count, pauses = exc, lost_count + (not exc.restarting), pauses + 1
            if deadline is None:
                deadline = time.monotonic() + max(LOST_WORKER_WAIT_SECONDS, call.timeout)
            pause = _PAUSES.delay(pauses)
            if lost_count >= tries or time.monotonic() + pause > deadline:
                break
            log.warning(
                "step %s of %s: its worker was lost (%s); sent again in %.1fs",
                call.step, call.execution_id, exc, pause,
            )  # fmt: skip
            await asyncio.sleep(pause)
    return StepOutcome(
        status=StepStatus.FAILED,
        output=None,
        error={"code": "worker_lost", "message": f"the worker running it was lost: {lost}"},
        attempts=lost_count,
        started_at=started,
        finished_at=iso(),
        duration_ms=round((time.monotonic() - t0) * 1000, 3),
    )


_PAUSES = Backoff(initial=0.2, maximum=5.0)
"""Between tries of a step whose worker was lost (jittered: a lost batch does not return at once)."""


def observe_step(metrics: Metrics, call: StepCall, outcome: StepOutcome) -> None:
    """A step that ran to ``outcome``: its metrics, and what its run was on the step's span
    (where it ran, how often it was tried, how long the run took there: the span's time less
    ``linqra.run_ms`` is what handing it to a worker cost)."""
    record_step(metrics, call, outcome)
    if tracing_recording():
        annotate({
            "linqra.executor": call.kind,
            "linqra.status": str(outcome.status),
            "linqra.attempts": outcome.attempts,
            "linqra.run_ms": outcome.duration_ms,
        })  # fmt: skip
