"""Routing and resilience as a wrapper around the model port.

A route maps an alias to an ordered list of deployments (``provider:model``). :class:`RoutedModel`
is itself a :class:`~linqra.llm.base.Model` and owns the one retry loop (SDK retries are off):

* retryable errors (429, 5xx, timeouts, connection errors) are retried with exponential backoff
  and jitter, honouring ``Retry-After``, moving to the next deployment each time (failover);
* each deployment has a circuit breaker (open after ``failure_threshold`` consecutive failures,
  for ``cooldown_seconds``) and a bulkhead (at most ``max_concurrent`` calls at once);
* each call has a timeout;
* a stream that fails *after its first token* is surfaced as an error, never retried, so no text
  is duplicated; before the first token it fails over like any call.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from linqra.errors import ProviderError
from linqra.llm.base import Model, StreamEvent
from linqra.llm.types import Delta, Message, ModelResponse, ModelSettings, ToolCallDelta
from linqra.resilience import Backoff, CircuitBreaker

__all__ = ["Deployment", "RoutePolicy", "RoutedModel"]


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    max_attempts: int = 3
    timeout_seconds: float = 60.0
    max_concurrent: int = 64
    failure_threshold: int = 5
    cooldown_seconds: float = 30.0
    backoff_initial: float = 0.2
    backoff_max: float = 10.0


class Deployment:
    def __init__(
        self, model: Model, policy: RoutePolicy, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.model = model
        self.breaker = CircuitBreaker(
            f"{model.provider}:{model.name}",
            policy.failure_threshold,
            policy.cooldown_seconds,
            clock=clock,
        )
        self.bulkhead = asyncio.Semaphore(policy.max_concurrent)


class RoutedModel:
    provider = "route"

    def __init__(
        self,
        name: str,
        models: Sequence[Model],
        policy: RoutePolicy | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not models:
            raise ValueError("a route needs at least one deployment")
        self.name = name
        self.policy = policy or RoutePolicy()
        self.deployments = [Deployment(m, self.policy, clock) for m in models]
        self._sleep, self._rand = sleep, rand
        self._backoff = Backoff(
            self.policy.max_attempts, self.policy.backoff_initial, self.policy.backoff_max
        )
        self._next = 0

    def _pick(self) -> Deployment:
        """The next deployment in order whose breaker lets a call through."""
        for offset in range(len(self.deployments)):
            deployment = self.deployments[(self._next + offset) % len(self.deployments)]
            if deployment.breaker.allow():
                self._next = (self._next + offset) % len(self.deployments)
                return deployment
        raise ProviderError(
            f"route {self.name!r}: every deployment's circuit breaker is open",
            retryable=True,
            retry_after=self.policy.cooldown_seconds,
            code="circuit_open",
        )

    def _failed(self, deployment: Deployment) -> None:
        deployment.breaker.record_failure()
        self._next = (self.deployments.index(deployment) + 1) % len(self.deployments)  # fail over

    async def request(self, messages: Sequence[Message], settings: ModelSettings) -> ModelResponse:
        attempt = 0
        while True:
            attempt += 1
            deployment = self._pick()
            try:
                async with deployment.bulkhead, asyncio.timeout(self.policy.timeout_seconds):
                    response = await deployment.model.request(messages, settings)
            except (ProviderError, TimeoutError) as exc:
                error = _as_provider_error(exc, deployment, self.policy.timeout_seconds)
                self._failed(deployment)
                if not error.retryable or attempt >= self.policy.max_attempts:
                    raise error from exc
                await self._sleep(
                    error.retry_after
                    if error.retry_after is not None
                    else self._backoff.delay(attempt, self._rand)
                )
                continue
            deployment.breaker.record_success()
            return response

    async def request_stream(
        self, messages: Sequence[Message], settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        attempt = 0
        while True:
            attempt += 1
            deployment = self._pick()
            started = False
            try:
                async with deployment.bulkhead, asyncio.timeout(self.policy.timeout_seconds):
                    async for event in deployment.model.request_stream(messages, settings):
                        if isinstance(event, Delta | ToolCallDelta):
                            started = True
                        yield event
            except (ProviderError, TimeoutError) as exc:
                error = _as_provider_error(exc, deployment, self.policy.timeout_seconds)
                self._failed(deployment)
                if started:  # text already went out: surface, never retry into duplicated text
                    raise ProviderError(
                        f"{error.message} (after the stream had started; not retried)",
                        retryable=False,
                        upstream_status=error.upstream_status,
                        code="stream_interrupted",
                    ) from exc
                if not error.retryable or attempt >= self.policy.max_attempts:
                    raise error from exc
                await self._sleep(
                    error.retry_after
                    if error.retry_after is not None
                    else self._backoff.delay(attempt, self._rand)
                )
                continue
            deployment.breaker.record_success()
            return


def _as_provider_error(exc: BaseException, deployment: Deployment, timeout: float) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    return ProviderError(
        f"{deployment.model.provider}:{deployment.model.name}: no answer within {timeout:g}s",
        retryable=True,
        code="provider_timeout",
    )
