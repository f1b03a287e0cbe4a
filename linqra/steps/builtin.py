"""Built-in step targets that need no outside system: ``transform``, ``noop``, ``wait``.

``transform`` (Linqra's DATA_PROCESSING) evaluates a JMESPath expression —
a query language with no way to run code — over ``params.input``, usually a
whole earlier result such as ``"{{step1.result}}"``::

    {"step": 2, "target": "transform",
     "params": {"expression": "people[?age > `30`].name", "input": "{{step1.result}}"}}

``noop`` returns its ``params`` (useful to shape data and in tests; inline: no Ray task);
``wait`` sleeps ``params.seconds`` (at most 3600) and returns its params.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from jmespath.exceptions import JMESPathError

from linqra.errors import StepError, ValidationError
from linqra.steps._jmespath import compile_jmespath, search_jmespath
from linqra.steps.base import ExecutorKind, StepCall, StepContext

if TYPE_CHECKING:
    from linqra.workflows.definition import Step

__all__ = ["NoopTarget", "TransformTarget", "WaitTarget"]

MAX_WAIT_SECONDS = 3600


def _compile(expression: str) -> Any:
    return compile_jmespath(expression)  # cached; refuses what would exhaust the stack


class TransformTarget:
    name = "transform"
    kind: ExecutorKind = "inline"
    url_intent = False
    pure = True

    def validate(self, step: Step, field: str) -> None:
        if step.action not in (None, "execute", "transform"):
            raise ValidationError(
                "action must be 'execute' (or omitted) for transform", field=f"{field}.action"
            )
        expression = step.params.get("expression")
        if not isinstance(expression, str) or not expression.strip():
            raise ValidationError(
                "params.expression (a JMESPath expression) is required",
                field=f"{field}.params.expression",
            )
        if "{{" not in expression:
            try:
                _compile(expression)
            except JMESPathError as exc:
                raise ValidationError(
                    f"invalid JMESPath expression: {exc}", field=f"{field}.params.expression"
                ) from None
        if "input" not in step.params:
            raise ValidationError(
                'params.input is required (e.g. "{{step1.result}}")', field=f"{field}.params.input"
            )

    async def run(self, call: StepCall, ctx: StepContext) -> Any:
        return transform(call.params["expression"], call.params.get("input"))


def transform(expression: str, data: Any) -> Any:
    try:
        return search_jmespath(expression, data)  # bounded: a too expensive one fails at once
    except (JMESPathError, RecursionError) as exc:
        raise StepError(
            f"transform failed: {exc}", non_retryable=True, code="transform_failed"
        ) from exc


class NoopTarget:
    name = "noop"
    kind: ExecutorKind = "inline"  # returns its params: no CPU work worth a Ray task
    url_intent = False
    pure = True

    def validate(self, step: Step, field: str) -> None:
        return None

    async def run(self, call: StepCall, ctx: StepContext) -> Any:
        return dict(call.params)


class WaitTarget:
    name = "wait"
    kind: ExecutorKind = "io"
    url_intent = False
    pure = False

    def validate(self, step: Step, field: str) -> None:
        seconds = step.params.get("seconds")
        if isinstance(seconds, str) and "{{" in seconds:
            return
        if (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not 0 <= seconds <= MAX_WAIT_SECONDS
        ):
            raise ValidationError(
                f"params.seconds must be a number from 0 to {MAX_WAIT_SECONDS}",
                field=f"{field}.params.seconds",
            )

    async def run(self, call: StepCall, ctx: StepContext) -> Any:
        seconds = call.params.get("seconds", 0)
        if not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_WAIT_SECONDS:
            raise StepError(
                f"params.seconds must be a number from 0 to {MAX_WAIT_SECONDS}", non_retryable=True
            )
        await asyncio.sleep(float(seconds))
        return dict(call.params)
