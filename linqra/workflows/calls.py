"""What the engine hands an executor for one step: the :class:`~linqra.steps.base.StepCall` with
its inputs resolved from the params and earlier results, and the step-cache key of that call.

Kept apart from :mod:`linqra.workflows.engine`, which decides when steps run and records them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from linqra.config import ExecutionSettings
from linqra.steps.base import ExecutorKind, StepCall
from linqra.tracing import traceparent
from linqra.workflows.definition import Step
from linqra.workflows.interpolation import Scope, render, render_text
from linqra.workflows.step_runs import RunState

__all__ = ["cache_key", "canonical_json", "step_call"]


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
