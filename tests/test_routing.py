"""Routing and resilience wrappers: retries, failover, breakers, bulkheads, timeouts, streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from linqra.config import LLMProviderConfig, LLMSettings, RouteConfig
from linqra.errors import ProviderError
from linqra.llm.base import StreamEvent
from linqra.llm.registry import LLMRegistry
from linqra.llm.routing import RoutedModel, RoutePolicy
from linqra.llm.types import Delta, Message, ModelResponse, ModelSettings, Usage
from tests.support.fake_openai import FakeOpenAI

ASK = [Message("user", "hi")]
NO = ModelSettings()


class Scripted:
    """A model that follows a script: each call takes the next step (an exception, a delay, or text)."""

    provider = "scripted"

    def __init__(
        self, name: str, script: Sequence[Any], *, fail_after_tokens: int | None = None
    ) -> None:
        self.name = name
        self.script = list(script)
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_after_tokens = fail_after_tokens

    async def _step(self) -> str:
        step = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if isinstance(step, BaseException):
                raise step
            if isinstance(step, float):
                await asyncio.sleep(step)
                return f"{self.name} slept"
            return str(step)
        finally:
            self.in_flight -= 1

    async def request(self, messages: Sequence[Message], settings: ModelSettings) -> ModelResponse:
        text = await self._step()
        return ModelResponse(text, self.name, self.provider, Usage(input_tokens=1, output_tokens=1))

    async def request_stream(
        self, messages: Sequence[Message], settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        if self.fail_after_tokens is not None:
            self.calls += 1
            for i in range(self.fail_after_tokens):
                yield Delta(f"t{i} ")
            raise ProviderError("connection reset", retryable=True)
        text = await self._step()
        for word in text.split():
            yield Delta(word + " ")
        yield ModelResponse(text, self.name, self.provider, Usage(input_tokens=1, output_tokens=1))


def retryable(retry_after: float | None = None) -> ProviderError:
    return ProviderError("HTTP 503", retryable=True, retry_after=retry_after, upstream_status=503)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_failover_to_the_next_deployment_honouring_retry_after() -> None:
    primary, backup = Scripted("a", [retryable(1.5)]), Scripted("b", ["from b"])
    sleeps = Sleeps()
    route = RoutedModel(
        "smart", [primary, backup], RoutePolicy(max_attempts=3), sleep=sleeps, rand=lambda: 1.0
    )
    response = await route.request(ASK, NO)
    assert response.text == "from b" and primary.calls == 1 and backup.calls == 1
    assert sleeps.waits == [1.5]


async def test_non_retryable_errors_are_not_retried() -> None:
    primary, backup = (
        Scripted("a", [ProviderError("HTTP 400", retryable=False)]),
        Scripted("b", ["ok"]),
    )
    route = RoutedModel("r", [primary, backup], sleep=Sleeps())
    with pytest.raises(ProviderError, match="HTTP 400"):
        await route.request(ASK, NO)
    assert backup.calls == 0


async def test_attempts_are_bounded_with_exponential_backoff() -> None:
    only = Scripted("a", [retryable()])
    sleeps = Sleeps()
    route = RoutedModel(
        "r",
        [only],
        RoutePolicy(max_attempts=4, backoff_initial=0.1, failure_threshold=99),
        sleep=sleeps,
        rand=lambda: 1.0,
    )
    with pytest.raises(ProviderError):
        await route.request(ASK, NO)
    assert only.calls == 4 and sleeps.waits == [0.1, 0.2, 0.4]


async def test_circuit_breaker_skips_a_failing_deployment_until_cooldown() -> None:
    now = [0.0]
    primary, backup = Scripted("a", [retryable()]), Scripted("b", ["b"])
    route = RoutedModel(
        "r",
        [primary, backup],
        RoutePolicy(failure_threshold=1, cooldown_seconds=30),
        sleep=Sleeps(),
        clock=lambda: now[0],
    )
    for _ in range(3):
        assert (await route.request(ASK, NO)).text == "b"
    assert primary.calls == 1  # open: not called again
    now[0] = 31.0  # cooldown over: one trial call goes to the primary again
    primary.script = ["a is back"]
    route._next = 0
    assert (await route.request(ASK, NO)).text == "a is back"


async def test_bulkhead_caps_concurrent_calls_per_deployment() -> None:
    slow = Scripted("a", [0.05])
    route = RoutedModel("r", [slow], RoutePolicy(max_concurrent=2), sleep=Sleeps())
    await asyncio.gather(*(route.request(ASK, NO) for _ in range(6)))
    assert slow.max_in_flight == 2 and slow.calls == 6


async def test_timeout_fails_over() -> None:
    hung, backup = Scripted("a", [5.0]), Scripted("b", ["b"])
    route = RoutedModel(
        "r", [hung, backup], RoutePolicy(timeout_seconds=0.1), sleep=Sleeps(), rand=lambda: 0.0
    )
    assert (await route.request(ASK, NO)).text == "b"


async def test_stream_fails_over_before_the_first_token_only() -> None:
    primary, backup = Scripted("a", [retryable()]), Scripted("b", ["streamed from b"])
    route = RoutedModel("r", [primary, backup], sleep=Sleeps())
    text = "".join([e.text async for e in route.request_stream(ASK, NO) if isinstance(e, Delta)])
    assert text.strip() == "streamed from b"
    broken, spare = Scripted("a", [], fail_after_tokens=2), Scripted("b", ["never"])
    route = RoutedModel("r", [broken, spare], sleep=Sleeps())
    seen: list[str] = []
    with pytest.raises(ProviderError) as err:
        async for event in route.request_stream(ASK, NO):
            if isinstance(event, Delta):
                seen.append(event.text)
    assert seen == ["t0 ", "t1 "] and err.value.code == "stream_interrupted" and spare.calls == 0


async def test_routes_from_settings_against_the_openai_protocol(fake_openai: FakeOpenAI) -> None:
    settings = LLMSettings(
        providers={"openai": LLMProviderConfig(kind="openai", base_url=fake_openai.base_url)},
        routes={
            "smart": RouteConfig(deployments=["openai:broken", "openai:gpt-4o"], max_attempts=3)
        },
    )
    registry = LLMRegistry(settings)
    resolved = registry.resolve("smart")
    assert resolved.requested == "route:smart" and resolved.fallback_reason is None
    response = await resolved.model.request(ASK, NO)
    assert (
        response.text == "Echo: hi" and response.provider == "openai" and response.model == "gpt-4o"
    )
    assert [r["body"]["model"] for r in fake_openai.requests[-2:]] == ["broken", "gpt-4o"]
    await registry.aclose()


# -- the same wrappers over the real wire protocols (official SDKs against local servers) -------
def _openai_models(fake: FakeOpenAI, *names: str) -> list[Any]:
    from linqra.llm.openai import OpenAIProvider

    provider = OpenAIProvider("openai", base_url=fake.base_url, api_key="k", timeout=10)
    return [provider.model(name) for name in names]


async def test_http_429_retry_after_is_honoured_then_fails_over(fake_openai: FakeOpenAI) -> None:
    sleeps = Sleeps()
    route = RoutedModel(
        "r", _openai_models(fake_openai, "rate-limited", "gpt-4o"), sleep=sleeps, rand=lambda: 0.0
    )
    response = await route.request(ASK, NO)
    assert response.text == "Echo: hi" and response.model == "gpt-4o"
    assert sleeps.waits == [2.0]  # the server's Retry-After: 2, not our backoff
    assert [r["body"]["model"] for r in fake_openai.requests[-2:]] == ["rate-limited", "gpt-4o"]


async def test_http_timeout_fails_over_and_closes_the_request(fake_openai: FakeOpenAI) -> None:
    route = RoutedModel(
        "r",
        _openai_models(fake_openai, "delay-3000", "gpt-4o"),
        RoutePolicy(timeout_seconds=0.3),
        sleep=Sleeps(),
        rand=lambda: 0.0,
    )
    started = asyncio.get_running_loop().time()
    response = await route.request(ASK, NO)
    assert response.model == "gpt-4o" and asyncio.get_running_loop().time() - started < 2.0


async def test_http_stream_cut_after_tokens_is_surfaced_not_retried(
    fake_openai: FakeOpenAI,
) -> None:
    route = RoutedModel("r", _openai_models(fake_openai, "cut", "gpt-4o"), sleep=Sleeps())
    before = len(fake_openai.requests)
    seen: list[str] = []
    with pytest.raises(ProviderError) as err:
        async for event in route.request_stream([Message("user", "one two three four")], NO):
            if isinstance(event, Delta):
                seen.append(event.text)
    assert err.value.code == "stream_interrupted"
    assert "".join(seen).startswith("Echo: one")  # the tokens that arrived were delivered once
    assert [r["body"]["model"] for r in fake_openai.requests[before:]] == ["cut"]  # no retry


async def test_http_anthropic_overload_fails_over_to_another_provider(
    fake_anthropic: Any, fake_openai: FakeOpenAI
) -> None:
    from linqra.llm.anthropic import AnthropicProvider

    claude = AnthropicProvider("anthropic", base_url=fake_anthropic.url, api_key="k", timeout=5)
    route = RoutedModel(
        "r",
        [claude.model("overloaded"), *_openai_models(fake_openai, "gpt-4o")],
        sleep=Sleeps(),
        rand=lambda: 0.0,
    )
    response = await route.request(ASK, NO)
    await claude.aclose()
    assert (
        response.provider == "openai"
        and fake_anthropic.requests[-1]["body"]["model"] == "overloaded"
    )
