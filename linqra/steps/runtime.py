"""Running one step call with its retry and timeout policy, wherever it runs.

The same function runs inline in the runner, inside a Ray task and inside an
I/O pool actor; it never raises for a step failure but returns a
:class:`StepOutcome`, so outcomes cross process boundaries as plain data.

A step's output must be storable: compact JSON of at most
``execution.max_step_output_bytes`` (1 MiB by default) with finite numbers only.
Anything else fails the step at once, not retried, with ``output_too_large`` or
``output_not_json`` — before the output reaches a record, the step cache or the
next step. The size is measured without building the whole text (:func:`json_size`),
so an output that would serialise to gigabytes (a JMESPath ``[@, @]`` chain shares one
list 2**30 times) costs as much to refuse as a 1 MiB one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from linqra import tracing
from linqra.clock import iso
from linqra.errors import LinqraError, StepError, StepTimeout
from linqra.logs import bind
from linqra.resilience import Backoff
from linqra.status import StepStatus
from linqra.steps.base import StepCall, StepContext, TargetRegistry

__all__ = ["StepOutcome", "json_size", "run_pure_now", "run_step_call"]

log = logging.getLogger(__name__)

# exactly what the stores accept, minus NaN/Infinity (SQLite's JSON functions refuse them)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)


_FAST_NODES = 2048
"""Values of at most this many JSON values (and ``limit`` characters of text) are measured by
encoding them whole with the C encoder; larger ones piece by piece."""
_SCALARS = (int, float, bool, type(None))


def json_size(value: Any, limit: int) -> int | None:
    """Bytes of ``value`` as compact UTF-8 JSON, or ``None`` as soon as they pass ``limit``.

    Encodes piece by piece and stops at the limit, so the cost is bounded by ``limit``
    (times the nesting depth), never by the full size. Raises ``ValueError`` for NaN or
    Infinity and ``TypeError`` for a value JSON cannot represent.

    A small value — most step inputs and outputs — is encoded whole by the C encoder instead,
    about 10x faster than the pure-Python pieces (a fifth of a 1,000-step fan-out's runner CPU,
    docs/perf/ray-profile.md); "small" is decided by a walk that stops early, and bounds the
    text whatever references the value shares.
    """
    if _small(value, limit):
        size = len(_ENCODER.encode(value).encode())
        return None if size > limit else size
    size = 0
    for chunk in _ENCODER.iterencode(value):
        size += len(chunk.encode())
        if size > limit:
            return None
    return size


def _small(value: Any, limit: int) -> bool:
    """At most :data:`_FAST_NODES` values of plain JSON types and ``limit`` characters of
    strings (keys included): its compact JSON is then at most about ``6 * limit`` characters
    plus a few per value, however often it repeats a reference."""
    nodes, chars, stack = 0, 0, [value]
    while stack:
        item = stack.pop()
        nodes += 1
        if nodes > _FAST_NODES:
            return False
        kind = type(item)
        if kind is str:
            chars += len(item)
        elif kind is dict:
            for key, inner in item.items():
                if type(key) is not str:
                    return False
                chars += len(key)
                stack.append(inner)
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind not in _SCALARS:
            return False
        if chars > limit:
            return False
    return True


def check_output(call: StepCall, output: Any, limit: int) -> None:
    """Raise a non-retryable :class:`StepError` unless ``output`` is storable JSON within ``limit``."""
    try:
        size = json_size(output, limit)
    except (ValueError, TypeError) as exc:
        raise StepError(
            f"step {call.step} output is not storable JSON ({exc})",
            non_retryable=True,
            code="output_not_json",
        ) from None
    if size is None:
        raise StepError(
            f"step {call.step} output is larger than {limit:,} bytes as JSON "
            "(limit: execution.max_step_output_bytes); nothing was stored",
            non_retryable=True,
            code="output_too_large",
        )


@dataclass(frozen=True, slots=True)
class StepOutcome:
    status: Literal[StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.TIMEOUT]
    output: Any
    error: dict[str, Any] | None
    attempts: int
    started_at: str
    finished_at: str
    duration_ms: float

    def record_fields(self) -> dict[str, Any]:
        """What a step-run record takes from this outcome."""
        return {
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_ms": self.duration_ms,
        }


async def run_step_call(
    call: StepCall,
    registry: TargetRegistry,
    ctx: StepContext,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> StepOutcome:
    """Run ``call`` up to ``call.max_attempts`` times, each bounded by ``call.timeout`` (under
    the engine's span for the step, ``call.trace``, when tracing is on: what the step records
    becomes that span's child, whichever process runs it)."""
    with bind(team=call.team_id, execution_id=call.execution_id), tracing.carry(call.trace):
        return await _run_step_call(call, registry, ctx, sleep, rand)


async def _run_step_call(
    call: StepCall,
    registry: TargetRegistry,
    ctx: StepContext,
    sleep: Callable[[float], Awaitable[None]],
    rand: Callable[[], float],
) -> StepOutcome:
    started_at = iso()
    t0 = time.perf_counter()
    backoff = Backoff(
        call.max_attempts, call.backoff_initial, call.backoff_max, call.backoff_multiplier
    )
    target = registry.get(call.target)
    limit = ctx.settings.execution.max_step_output_bytes
    attempt = 0
    while True:
        attempt += 1
        try:
            async with asyncio.timeout(call.timeout):  # not wait_for: no extra task a step
                output = await target.run(call, ctx)
            check_output(call, output, limit)
        except TimeoutError:
            error: dict[str, Any] = {
                "code": "step_timeout",
                "message": f"step {call.step} ran past its {call.timeout:g}s timeout",
            }
            retryable, delay = True, None
            status: Literal[StepStatus.FAILED, StepStatus.TIMEOUT] = StepStatus.TIMEOUT
        except StepError as exc:
            error = {"code": exc.code, "message": exc.message}
            retryable, delay = not exc.non_retryable, exc.next_retry_delay
            status = StepStatus.TIMEOUT if isinstance(exc, StepTimeout) else StepStatus.FAILED
        except LinqraError as exc:
            error = {"code": exc.code, "message": exc.message}
            retryable, delay, status = False, None, StepStatus.FAILED
        except Exception as exc:
            log.warning("step %s of %s raised %s", call.step, call.execution_id, type(exc).__name__)
            error = {
                "code": "step_exception",
                "message": f"{type(exc).__name__}: {exc}",
                "trace": traceback.format_exc(limit=5)[-2000:],
            }
            retryable, delay, status = True, None, StepStatus.FAILED
        else:
            return StepOutcome(
                StepStatus.COMPLETED, output, None, attempt, started_at, iso(), _ms(t0)
            )
        if not retryable or attempt >= call.max_attempts:
            return StepOutcome(status, None, error, attempt, started_at, iso(), _ms(t0))
        wait = delay if delay is not None else backoff.delay(attempt, rand)
        log.info(
            "step %s of %s attempt %d failed (%s); retrying in %.2fs",
            call.step,
            call.execution_id,
            attempt,
            error["code"],
            wait,
        )
        await sleep(wait)


def run_pure_now(call: StepCall, registry: TargetRegistry, ctx: StepContext) -> StepOutcome | None:
    """A pure step's outcome (``transform``, ``noop``) worked out at once, without an event
    loop; ``None`` when the usual path must run it: the target is not pure, awaited something,
    or failed (its retries, its error's shape). A pure step may be run twice, so that path
    starts it over.

    For a warm CPU-step worker, whose calls are synchronous: getting a pure target's result
    through an event loop (a task, a timer for the timeout, the process's system awaited) cost
    more than the target itself. The timeout is not lost: a pure target does not yield to the
    loop, so ``asyncio.timeout`` could only ever act after it had returned.

    Nor are the step's log fields bound or its trace context carried, as the usual path does: a
    pure target has no effect, so it neither logs nor makes a span (one that fails goes the usual
    way, which does both). In a tight loop binding cost a step 2.2 µs and carrying 1.1 µs, 7.2 µs
    in a recorded trace, whose every step brings a context of its own (issue 16's B17). The
    runner's span for the step is the step's span wherever it ran."""
    target = registry.get(call.target)
    if not target.pure:
        return None
    started_at, t0 = iso(), time.perf_counter()
    running = target.run(call, ctx)
    try:
        running.send(None)
    except StopIteration as done:
        output = done.value
    except Exception:
        return None
    else:  # it awaited: it needs a loop
        running.close()
        return None
    try:
        check_output(call, output, ctx.settings.execution.max_step_output_bytes)
    except StepError:
        return None
    return StepOutcome(StepStatus.COMPLETED, output, None, 1, started_at, iso(), _ms(t0))


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)
