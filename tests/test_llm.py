"""The LLM layer (first part): local provider, OpenAI wire format via the official SDK, prices, LLM steps."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from linqra.config import LLMProviderConfig, LLMSettings, Settings
from linqra.errors import ProviderError, ValidationError
from linqra.llm.base import Model
from linqra.llm.local import LocalModel
from linqra.llm.openai import OpenAIProvider
from linqra.llm.pricing import load_catalogue
from linqra.llm.registry import LLMRegistry
from linqra.llm.types import (
    Delta,
    Message,
    ModelResponse,
    ModelSettings,
    Usage,
    parse_messages,
    parse_settings,
)
from linqra.system import System
from tests.support.fake_openai import FakeOpenAI

NO_SETTINGS = ModelSettings()


async def collect(model: Model, messages: list[Message]) -> tuple[str, ModelResponse]:
    parts, final = [], None
    async for event in model.request_stream(messages, NO_SETTINGS):
        if isinstance(event, Delta):
            parts.append(event.text)
        else:
            final = event
    assert final is not None
    return "".join(parts), final


# -- local provider ----------------------------------------------------------------------
async def test_local_model_quotes_the_context_and_is_labelled() -> None:
    model = LocalModel()
    messages = [
        Message(
            "system",
            "Seneca was a Roman Stoic. The library opens at nine. Marcus wrote Meditations.",
        ),
        Message("user", "When does the library open?"),
    ]
    response = await model.request(messages, NO_SETTINGS)
    assert (
        response.text.startswith("[local model]") and "The library opens at nine." in response.text
    )
    # usage is counted with a real BPE tokenizer (o200k_base), checked here with the library itself
    import bpe_openai

    encoding = bpe_openai.get_encoding("o200k_base")
    assert not response.usage.estimated
    assert response.usage.output_tokens == len(encoding.encode(response.text))
    assert response.usage.input_tokens > sum(len(encoding.encode(m.content)) for m in messages)
    streamed, final = await collect(model, messages)
    assert streamed == response.text == final.text
    assert (await model.request(messages, NO_SETTINGS)).text == response.text  # deterministic


async def test_local_model_without_context_says_what_it_was_asked() -> None:
    response = await LocalModel().request(
        [Message("user", "Name the language of: Carpe diem")], NO_SETTINGS
    )
    assert "You asked: Name the language of: Carpe diem" in response.text


def test_message_and_setting_errors_name_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        parse_messages([{"role": "robot", "content": "x"}])
    assert err.value.field == "payload[0].role"
    with pytest.raises(ValidationError) as err:
        parse_settings({"temperature": 3})
    assert err.value.field == "llmConfig.settings.temperature"
    with pytest.raises(ValidationError) as err:
        parse_settings({"max_tokens": 0})
    assert err.value.field == "llmConfig.settings.max_tokens"


# -- prices ------------------------------------------------------------------------------
def test_costs_are_exact_decimals_by_token_kind() -> None:
    catalogue = load_catalogue()
    usage = Usage(input_tokens=1000, cache_read_tokens=2000, output_tokens=500)
    cost = catalogue.cost("openai", "gpt-4o", usage)
    assert cost is not None
    # 1000 * 2.50 + 2000 * 1.25 + 500 * 10.00, per million
    assert cost.amount == Decimal("0.01") and cost.price_version == catalogue.version
    claude = catalogue.cost(
        "anthropic",
        "claude-sonnet-4-5",
        Usage(input_tokens=100, cache_read_tokens=1000, cache_write_tokens=200, output_tokens=50),
    )
    assert claude is not None
    assert claude.amount == (
        100 * Decimal("3.00")
        + 1000 * Decimal("0.30")
        + 200 * Decimal("3.75")
        + 50 * Decimal("15.00")
    ) / Decimal(1_000_000)
    long = catalogue.cost(
        "anthropic", "claude-sonnet-4-5", Usage(input_tokens=250_000, output_tokens=1000)
    )
    assert long is not None and long.tier == "long_context"
    assert long.amount == (250_000 * Decimal("6.00") + 1000 * Decimal("22.50")) / Decimal(1_000_000)
    assert catalogue.cost("openai", "no-such-model", usage) is None


# -- the OpenAI wire format through the official SDK -------------------------------------
def provider(fake: FakeOpenAI) -> OpenAIProvider:
    return OpenAIProvider("openai", base_url=fake.base_url, api_key="sk-test", timeout=5)


async def test_openai_request_reports_provider_usage(fake_openai: FakeOpenAI) -> None:
    p = provider(fake_openai)
    response = await p.model("gpt-4o").request(
        [Message("user", "hello there")], ModelSettings(temperature=0.2)
    )
    await p.aclose()
    assert response.text == "Echo: hello there"
    assert response.usage == Usage(input_tokens=3, cache_read_tokens=3, output_tokens=3)
    sent = fake_openai.requests[-1]
    assert sent["auth"] == "Bearer sk-test" and sent["body"]["temperature"] == 0.2


async def test_openai_stream_asks_for_and_uses_the_usage_chunk(fake_openai: FakeOpenAI) -> None:
    p = provider(fake_openai)
    text, final = await collect(p.model("gpt-4o"), [Message("user", "stream me please")])
    await p.aclose()
    assert text == final.text == "Echo: stream me please"
    assert final.usage.output_tokens == 4 and not final.usage.estimated
    assert fake_openai.requests[-1]["body"]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("model", "code", "retryable", "retry_after"),
    [
        ("rate-limited", "provider_rate_limited", True, 2.0),
        ("broken", "provider_error", True, None),
        ("malformed", "provider_error", False, None),
    ],
)
async def test_openai_errors_are_translated(
    fake_openai: FakeOpenAI, model: str, code: str, retryable: bool, retry_after: float | None
) -> None:
    p = provider(fake_openai)
    with pytest.raises(ProviderError) as err:
        await p.model(model).request([Message("user", "x")], NO_SETTINGS)
    await p.aclose()
    assert (
        err.value.code == code
        and err.value.retryable is retryable
        and err.value.retry_after == retry_after
    )


async def test_openai_stream_cut_midway_is_an_error(fake_openai: FakeOpenAI) -> None:
    p = provider(fake_openai)
    with pytest.raises(ProviderError):
        await collect(p.model("cut"), [Message("user", "one two three four")])
    await p.aclose()


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        OpenAIProvider("openai").api_key()
    registry = LLMRegistry(LLMSettings(offline_fallback=False))
    with pytest.raises(ProviderError, match="no API key in OPENAI_API_KEY"):
        registry.resolve("openai:gpt-4o")


def test_model_references() -> None:
    registry = LLMRegistry(LLMSettings(aliases={"fast": "openai:gpt-4o-mini"}))
    assert registry.parse("gpt-4o", "openai") == ("openai", "gpt-4o")
    assert registry.parse("fast") == ("openai", "gpt-4o-mini")
    assert registry.parse(None, "claude") == ("anthropic", "claude-haiku-4-5")
    with pytest.raises(ValidationError, match="needs a provider"):
        registry.parse("gpt-4o", "llm")


# -- LLM steps in workflows ----------------------------------------------------------------
async def test_linqra_llm_steps_in_a_workflow(
    settings: Settings, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-fake")
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)  # the gemini step must fall back, offline
    providers = {
        **LLMSettings().providers,
        "openai": LLMProviderConfig(
            kind="openai", base_url=fake_openai.base_url, api_key_env="FAKE_OPENAI_KEY"
        ),
    }
    configured = settings.model_copy(update={"llm": LLMSettings(providers=providers)})
    system = await System.open(configured)
    try:
        wf = await system.workflows.create(
            "team-a",
            {
                "name": "quote",
                "steps": [
                    {
                        "step": 1,
                        "target": "quotes-service",
                        "action": "fetch",
                        "intent": "/api/people/random",
                        "params": {"i": 1},
                    },
                    {
                        "step": 2,
                        "target": "openai",
                        "action": "generate",
                        "intent": "generate",
                        "payload": [
                            {"role": "system", "content": "Write in the style of the examples."},
                            {
                                "role": "user",
                                "content": "One saying by {{step1.result.fullName}} about {{params.topic}}.",
                            },
                        ],
                        "llmConfig": {
                            "model": "gpt-4o",
                            "settings": {"temperature": 0.9, "max_tokens": 120},
                        },
                    },
                    {
                        "step": 3,
                        "target": "gemini",
                        "action": "generate",
                        "stream": True,
                        "payload": [
                            {
                                "role": "user",
                                "content": "Name the language of: {{step2.result.choices[0].message.content}}",
                            }
                        ],
                        "llmConfig": {"model": "gemini-2.0-flash"},
                    },
                ],
            },
        )
        ex = await system.workflows.new_execution(
            "team-a", workflow_id=wf.id, params={"topic": "courage"}
        )
        runner = system.runner("llm")
        await runner.submit("team-a", ex["id"])
        record = await runner.wait("team-a", ex["id"], 30)
    finally:
        await system.close()
    assert record["status"] == "COMPLETED", record["error"]
    steps = {s["step"]: s["output"] for s in record["steps"]}
    assert (
        steps[2]["choices"][0]["message"]["content"] == "Echo: One saying by Seneca about courage."
    )
    assert steps[2]["text"] == steps[2]["choices"][0]["message"]["content"]
    assert steps[2]["provider"] == "openai" and steps[2]["usage"]["prompt_tokens"] > 0
    assert Decimal(steps[2]["cost"]["amount"]) > 0 and steps[2]["cost"]["currency"] == "USD"
    # no Gemini key here: the local provider answers, and says so
    assert (
        steps[3]["provider"] == "local"
        and steps[3]["fallback"]["reason"] == "no API key in GEMINI_API_KEY"
    )
    assert (
        steps[3]["text"].startswith("[local model]")
        and "Echo: One saying by Seneca" in steps[3]["text"]
    )


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (
            {"step": 1, "target": "openai", "payload": "hi", "llmConfig": {"model": 3}},
            "steps[0].llmConfig.model",
        ),
        (
            {"step": 1, "target": "openai", "payload": [{"role": "x", "content": "hi"}]},
            "steps[0].payload[0].role",
        ),
        (
            {
                "step": 1,
                "target": "claude",
                "payload": [{"role": "user", "content": "hi"}],
                "llmConfig": {"settings": {"temperature": 5}},
            },
            "steps[0].llmConfig.settings.temperature",
        ),
        (
            {"step": 1, "target": "llm", "payload": "hi", "llmConfig": {"model": "gpt-4o"}},
            "steps[0].llmConfig.model",
        ),
    ],
)
async def test_bad_llm_steps_are_refused(system: System, step: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        await system.workflows.create("team-a", {"name": "bad", "steps": [step]})
    assert err.value.field == field


# -- Anthropic's Messages protocol through the official SDK ----------------------------------
def anthropic_provider(fake: Any) -> Any:
    from linqra.llm.anthropic import AnthropicProvider

    return AnthropicProvider("anthropic", base_url=fake.url, api_key="sk-ant-test", timeout=5)


async def test_anthropic_request_with_cache_usage(fake_anthropic: Any) -> None:
    from tests.support.fake_anthropic import CACHE_READ, CACHE_WRITE

    p = anthropic_provider(fake_anthropic)
    response = await p.model("claude-sonnet-4-5").request(
        [Message("system", "Be brief."), Message("user", "hello claude")],
        ModelSettings(temperature=1.5),
    )
    await p.aclose()
    assert response.text == "Echo: hello claude"
    assert response.usage == Usage(
        input_tokens=4,
        cache_read_tokens=CACHE_READ,
        cache_write_tokens=CACHE_WRITE,
        output_tokens=3,
    )
    sent = fake_anthropic.requests[-1]
    assert sent["api_key"] == "sk-ant-test" and sent["body"]["system"] == "Be brief."
    assert "temperature" not in sent["body"] and sent["body"]["max_tokens"] == 1024
    cost = load_catalogue().cost("anthropic", "claude-sonnet-4-5", response.usage)
    assert cost is not None
    assert cost.amount == (
        4 * Decimal("3.00")
        + CACHE_READ * Decimal("0.30")
        + CACHE_WRITE * Decimal("3.75")
        + 3 * Decimal("15.00")
    ) / Decimal(1_000_000)


async def test_anthropic_stream_usage_from_message_events(fake_anthropic: Any) -> None:
    p = anthropic_provider(fake_anthropic)
    text, final = await collect(
        p.model("claude-haiku-4-5"), [Message("user", "stream three words")]
    )
    await p.aclose()
    assert text == final.text == "Echo: stream three words"
    assert (
        final.usage.output_tokens == 4
        and final.usage.cache_read_tokens == 5
        and not final.usage.estimated
    )


@pytest.mark.parametrize(
    ("model", "retryable", "retry_after", "status"),
    [("rate-limited", True, 3.0, 429), ("overloaded", True, None, 529)],
)
async def test_anthropic_errors(
    fake_anthropic: Any, model: str, retryable: bool, retry_after: float | None, status: int
) -> None:
    p = anthropic_provider(fake_anthropic)
    with pytest.raises(ProviderError) as err:
        await p.model(model).request([Message("user", "x")], NO_SETTINGS)
    await p.aclose()
    assert err.value.retryable is retryable and err.value.retry_after == retry_after
    assert err.value.upstream_status == status


# -- Gemini's generateContent protocol through the official google-genai SDK --------------------
def gemini_provider(fake: Any) -> Any:
    from linqra.llm.gemini import GeminiProvider

    return GeminiProvider("gemini", base_url=fake.url, api_key="g-test", timeout=5)


async def test_gemini_request_usage_with_cache_and_thinking(fake_gemini: Any) -> None:
    from tests.support.fake_gemini import CACHED, THOUGHTS

    p = gemini_provider(fake_gemini)
    response = await p.model("gemini-2.5-flash").request(
        [Message("system", "Be brief."), Message("user", "hello gemini")],
        ModelSettings(temperature=0.3, max_tokens=50),
    )
    await p.aclose()
    assert response.text == "Echo: hello gemini"
    prompt = 2 + 6
    assert response.usage == Usage(
        input_tokens=prompt - CACHED,
        cache_read_tokens=CACHED,
        output_tokens=3 + THOUGHTS,
        reasoning_tokens=THOUGHTS,
    )
    sent = fake_gemini.requests[-1]
    assert sent["api_key"] == "g-test" and sent["method"] == "generateContent"
    assert sent["body"]["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert sent["body"]["generationConfig"]["maxOutputTokens"] == 50


async def test_gemini_stream_takes_the_last_usage(fake_gemini: Any) -> None:
    p = gemini_provider(fake_gemini)
    text, final = await collect(
        p.model("gemini-2.0-flash"), [Message("user", "stream four words now")]
    )
    await p.aclose()
    assert text == final.text == "Echo: stream four words now"
    assert final.usage.output_tokens == 5 + 7 and final.usage.reasoning_tokens == 7
    assert fake_gemini.requests[-1]["method"] == "streamGenerateContent"


# -- Cohere's v2 Chat protocol through the official SDK ---------------------------------------------
def cohere_provider(fake: Any) -> Any:
    from linqra.llm.cohere import CohereProvider

    return CohereProvider("cohere", base_url=fake.url, api_key="co-test", timeout=5)


async def test_cohere_request_bills_from_billed_units(fake_cohere: Any) -> None:
    p = cohere_provider(fake_cohere)
    response = await p.model("command-r").request(
        [Message("user", "hello cohere")], ModelSettings(temperature=0.4)
    )
    await p.aclose()
    assert response.text == "Echo: hello cohere"
    assert response.usage == Usage(input_tokens=5, output_tokens=3)
    sent = fake_cohere.requests[-1]
    assert sent["auth"] == "Bearer co-test" and sent["body"]["temperature"] == 0.4


async def test_cohere_stream_usage_from_message_end(fake_cohere: Any) -> None:
    p = cohere_provider(fake_cohere)
    text, final = await collect(p.model("command-r-plus"), [Message("user", "stream it now")])
    await p.aclose()
    assert text == final.text == "Echo: stream it now" and final.usage.output_tokens == 4


async def test_cohere_rate_limit(fake_cohere: Any) -> None:
    p = cohere_provider(fake_cohere)
    before = len(fake_cohere.requests)  # the fake serves the whole session: count ours only
    with pytest.raises(ProviderError) as err:
        await p.model("rate-limited").request([Message("user", "x")], NO_SETTINGS)
    await p.aclose()
    assert err.value.retryable and err.value.upstream_status == 429 and err.value.retry_after == 1.0
    assert len(fake_cohere.requests[before:]) == 1  # SDK retries off
