"""Retry backoff and circuit breakers, with the clock injected; and :func:`to_the_end`, for
what must be recorded even when its task is being cancelled.

Backoff and breakers are used as wrappers around a call, never inside an adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["Backoff", "CircuitBreaker", "CircuitOpen", "parse_retry_after", "to_the_end"]

T = TypeVar("T")


async def to_the_end(work: Awaitable[T]) -> T:
    """``work``'s result, waited for through any further cancellation of the caller.

    A task may be cancelled twice — a chat turn by its cancel request and by its heartbeat
    seeing the same request — and ``asyncio.shield`` alone returns at the second cancel while
    the work goes on unwatched: the caller would then report a stop before it is recorded (a
    cancelled reply's text and cost read too early). Use it for the recording a cancellation
    does, then re-raise the cancellation."""
    task = asyncio.ensure_future(work)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    return task.result()


def parse_retry_after(value: str | None, cap: float = 600.0) -> float | None:
    """Seconds from a ``Retry-After`` header (the delta-seconds form), bounded; ``None`` if absent or unreadable."""
    if value is None:
        return None
    try:
        return max(0.0, min(float(value), cap))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt ``n`` waits up to ``initial * multiplier**(n-1)``.

    The wait is drawn uniformly from ``[cap/2, cap]`` ("equal jitter"), so retries
    of many callers spread out but never retry instantly.
    """

    max_attempts: int = 1
    initial: float = 0.2
    maximum: float = 10.0
    multiplier: float = 2.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        cap = min(self.maximum, self.initial * self.multiplier ** max(0, attempt - 1))
        return cap / 2 + rand() * cap / 2


class CircuitOpen(Exception):
    """The breaker refuses calls until ``retry_at`` (monotonic seconds)."""

    def __init__(self, name: str, retry_at: float) -> None:
        super().__init__(f"circuit {name!r} is open")
        self.name = name
        self.retry_at = retry_at

    def __reduce__(self) -> tuple[object, ...]:
        return (CircuitOpen, (self.name, self.retry_at))


@dataclass
class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive failures → half-open after ``cooldown``.

    In half-open one trial call passes; success closes the breaker, failure
    opens it for another ``cooldown``.
    """

    name: str
    failure_threshold: int = 5
    cooldown: float = 30.0
    clock: Callable[[], float] = field(default=lambda: 0.0)
    failures: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.cooldown else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self.trial_in_flight:
            self.trial_in_flight = True
            return True
        return False

    def check(self) -> None:
        if not self.allow():
            assert self.opened_at is not None
            raise CircuitOpen(self.name, self.opened_at + self.cooldown)

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.trial_in_flight = False

    def record_failure(self) -> None:
        self.failures += 1
        if self.trial_in_flight or self.failures >= self.failure_threshold:
            self.opened_at = self.clock()
        self.trial_in_flight = False
