"""The model port contract (:class:`linqra.llm.base.Model`), run on the offline ``local`` model and
on the OpenAI, Anthropic, Gemini and Cohere adapters (each through its vendor's official SDK)
against their wire-protocol fakes. The fakes' model names pick a behaviour: ``rate-limited``
answers 429 with Retry-After, ``malformed`` a body that is not JSON, any other name echoes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from linqra.errors import ProviderError
from linqra.llm.base import Model, Provider
from linqra.llm.local import LocalProvider
from linqra.llm.types import (
    Delta,
    Message,
    ModelResponse,
    ModelSettings,
    ToolCallDelta,
    parse_settings,
)
from tests.support.servers import free_port

QUESTION = [Message("user", "where is order 42")]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order by its number",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
    }
]
OPENAI_FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter"}

ModelOf = Callable[[str], Model]


async def streamed(model: Model, messages: list[Message], settings: ModelSettings) -> tuple[
    list[Delta], list[ToolCallDelta], list[ModelResponse]
]:  # fmt: skip
    deltas: list[Delta] = []
    calls: list[ToolCallDelta] = []
    finals: list[ModelResponse] = []
    async for event in model.request_stream(messages, settings):
        assert not finals, "nothing may follow the final response"
        if isinstance(event, Delta):
            deltas.append(event)
        elif isinstance(event, ToolCallDelta):
            calls.append(event)
        else:
            finals.append(event)
    return deltas, calls, finals


def joined_calls(pieces: list[ToolCallDelta]) -> list[tuple[str, str, str]]:
    calls: dict[int, list[str]] = {}
    for piece in pieces:
        entry = calls.setdefault(piece.index, ["", "", ""])
        entry[0] = piece.id or entry[0]
        entry[1] = piece.name or entry[1]
        entry[2] += piece.arguments
    return [(c[0], c[1], c[2]) for _, c in sorted(calls.items())]


def client_connections(port: int) -> int:
    """Established TCP connections from this host to ``port`` (the upstream side of a stream)."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                total += 1
    return total


class ModelContract:
    """Every model, ``local`` included. Fixtures: ``model_of`` (a model by name),
    ``upstream`` (how many connections to the provider are open)."""

    provider: str

    async def test_a_request_returns_one_complete_response_naming_its_provider_with_usage(
        self, model_of: ModelOf
    ) -> None:
        response = await model_of("m-1").request(QUESTION, ModelSettings())
        assert response.text and response.provider == self.provider
        assert response.usage.prompt_tokens > 0 and response.usage.output_tokens > 0
        assert not response.usage.estimated and not response.tool_calls

    async def test_a_stream_yields_text_deltas_then_exactly_one_final_response_with_their_text(
        self, model_of: ModelOf
    ) -> None:
        deltas, calls, finals = await streamed(model_of("m-1"), QUESTION, ModelSettings())
        assert len(deltas) > 1 and not calls and len(finals) == 1  # deltas as they arrive
        [final] = finals
        assert "".join(d.text for d in deltas) == final.text and final.text
        assert final.provider == self.provider and final.usage.output_tokens > 0

    async def test_the_finish_reason_is_in_openais_words(self, model_of: ModelOf) -> None:
        model = model_of("m-1")
        text = await model.request(QUESTION, ModelSettings())
        _, _, [streamed_text] = await streamed(model, QUESTION, ModelSettings())
        tools = parse_settings({"tools": TOOLS, "tool_choice": "required"})
        call = await model.request(QUESTION, tools)
        assert text.finish_reason in OPENAI_FINISH_REASONS
        assert streamed_text.finish_reason in OPENAI_FINISH_REASONS
        assert call.finish_reason == "tool_calls"

    @pytest.mark.parametrize("stream", [False, True], ids=["request", "stream"])
    async def test_offered_a_required_tool_a_model_calls_it_with_empty_text(
        self, model_of: ModelOf, stream: bool
    ) -> None:
        model = model_of("m-1")
        settings = parse_settings({"tools": TOOLS, "tool_choice": "required"})
        if stream:
            deltas, pieces, [response] = await streamed(model, QUESTION, settings)
            assert not "".join(d.text for d in deltas)
            assert joined_calls(pieces) == [
                (c.id, c.name, c.arguments) for c in response.tool_calls
            ]
        else:
            response = await model.request(QUESTION, settings)
        assert response.text == "" and len(response.tool_calls) == 1
        [call] = response.tool_calls
        assert call.id and call.name == "lookup_order"
        assert call.parsed_arguments() == {"query": "where is order 42"}

    async def test_given_the_tool_result_a_model_answers_in_text_from_it(
        self, model_of: ModelOf
    ) -> None:
        model = model_of("m-1")
        settings = parse_settings({"tools": TOOLS, "tool_choice": "required"})
        [call] = (await model.request(QUESTION, settings)).tool_calls
        conversation = [
            *QUESTION,
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", "Order 42 shipped on Monday.", tool_call_id=call.id),
        ]
        answer = await model.request(conversation, settings)
        assert "shipped on Monday" in answer.text and not answer.tool_calls

    async def test_closing_a_stream_early_closes_the_upstream_stream(
        self, model_of: ModelOf, upstream: Callable[[], int]
    ) -> None:
        long_question = [Message("user", " ".join(f"word{i}" for i in range(2000)))]
        stream = model_of("m-1").request_stream(long_question, ModelSettings())
        first = await anext(aiter(stream))  # the answer has begun: thousands of pieces to go
        assert isinstance(first, Delta)
        await stream.aclose()  # type: ignore[attr-defined]
        with pytest.raises(StopAsyncIteration):
            await anext(aiter(stream))
        deadline = time.monotonic() + 2  # the upstream would stream for 10 s more
        while upstream():
            assert time.monotonic() < deadline, "the upstream stream is still open"
            await asyncio.sleep(0.02)


class RemoteModelContract(ModelContract):
    """What only a model behind a network provider can show. Fixture: ``unreachable`` (a model
    whose provider does not answer); class attribute ``retry_after`` (the fake's Retry-After)."""

    retry_after: float

    @pytest.mark.parametrize("stream", [False, True], ids=["request", "stream"])
    async def test_a_provider_that_cannot_be_reached_is_a_retryable_provider_error(
        self, unreachable: Model, stream: bool
    ) -> None:
        with pytest.raises(ProviderError) as err:
            if stream:
                await streamed(unreachable, QUESTION, ModelSettings())
            else:
                await unreachable.request(QUESTION, ModelSettings())
        assert err.value.retryable

    async def test_a_rate_limit_is_retryable_after_the_providers_retry_after(
        self, model_of: ModelOf
    ) -> None:
        with pytest.raises(ProviderError) as err:
            await model_of("rate-limited").request(QUESTION, ModelSettings())
        assert err.value.retryable and err.value.upstream_status == 429
        assert err.value.retry_after == self.retry_after

    async def test_a_body_that_is_not_the_wire_format_is_not_retryable(
        self, model_of: ModelOf
    ) -> None:
        with pytest.raises(ProviderError) as err:
            await model_of("malformed").request(QUESTION, ModelSettings())
        assert not err.value.retryable


# -- the adapters --------------------------------------------------------------------------------
async def _opened(make: Callable[[str], Provider]) -> AsyncIterator[Callable[[str], Provider]]:
    """A provider factory whose providers are closed after the test."""
    providers: list[Provider] = []

    def opened(url: str) -> Provider:
        providers.append(make(url))
        return providers[-1]

    yield opened
    for provider in providers:
        await provider.aclose()


class TestLocalModel(ModelContract):
    provider = "local"

    @pytest.fixture
    def model_of(self) -> ModelOf:
        return LocalProvider().model

    @pytest.fixture
    def upstream(self) -> Callable[[], int]:
        return lambda: 0  # no network: nothing to close but the iterator

    async def test_every_answer_says_it_comes_from_the_local_model(self, model_of: ModelOf) -> None:
        model = model_of("local")
        assert (await model.request(QUESTION, ModelSettings())).text.startswith("[local model]")
        _, _, [final] = await streamed(model, QUESTION, ModelSettings())
        assert final.text.startswith("[local model]") and final.labels == {"local": True}


class _VendorModel(RemoteModelContract):
    fake_fixture: str

    def _url(self, fake: Any) -> str:
        return str(fake.url)

    def _provider(self, url: str) -> Provider:
        raise NotImplementedError

    @pytest.fixture
    def fake(self, request: pytest.FixtureRequest) -> Any:
        return request.getfixturevalue(self.fake_fixture)

    @pytest.fixture
    async def providers(self) -> AsyncIterator[Callable[[str], Provider]]:
        async for opened in _opened(self._provider):
            yield opened

    @pytest.fixture
    def model_of(self, providers: Callable[[str], Provider], fake: Any) -> ModelOf:
        provider = providers(self._url(fake))
        return provider.model

    @pytest.fixture
    def upstream(self, fake: Any) -> Callable[[], int]:
        return lambda: client_connections(fake.port)

    @pytest.fixture
    def unreachable(self, providers: Callable[[str], Provider]) -> Model:
        port = free_port()
        url = (
            f"http://127.0.0.1:{port}/v1"
            if self.provider == "openai"
            else f"http://127.0.0.1:{port}"
        )
        return providers(url).model("m-1")


class TestOpenAIModel(_VendorModel):
    provider, fake_fixture, retry_after = "openai", "fake_openai", 2.0

    def _url(self, fake: Any) -> str:
        return str(fake.base_url)

    def _provider(self, url: str) -> Provider:
        from linqra.llm.openai import OpenAIProvider

        return OpenAIProvider("openai", base_url=url, api_key="k", timeout=5)


class TestAnthropicModel(_VendorModel):
    provider, fake_fixture, retry_after = "anthropic", "fake_anthropic", 3.0

    def _provider(self, url: str) -> Provider:
        from linqra.llm.anthropic import AnthropicProvider

        return AnthropicProvider("anthropic", base_url=url, api_key="k", timeout=5)


class TestGeminiModel(_VendorModel):
    provider, fake_fixture, retry_after = "gemini", "fake_gemini", 4.0

    def _provider(self, url: str) -> Provider:
        from linqra.llm.gemini import GeminiProvider

        return GeminiProvider("gemini", base_url=url, api_key="k", timeout=5)


class TestCohereModel(_VendorModel):
    provider, fake_fixture, retry_after = "cohere", "fake_cohere", 1.0

    def _provider(self, url: str) -> Provider:
        from linqra.llm.cohere import CohereProvider

        return CohereProvider("cohere", base_url=url, api_key="k", timeout=5)
