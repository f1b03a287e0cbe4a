"""The gateway's OpenAI-compatible API, driven by the official openai client."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import openai
import pytest

from tests.support.fake_openai import FakeOpenAI

pytestmark = pytest.mark.ray


@pytest.fixture
def client(gateway_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{gateway_url}/v1",
        api_key="unused",
        max_retries=0,
        default_headers={"X-Team-Id": "team-llm"},
    ) as c:
        yield c


def test_chat_completion_through_the_gateway(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    completion = client.chat.completions.create(
        model="openai:gpt-4o",
        messages=[{"role": "user", "content": "hello gateway"}],
        temperature=0.1,
    )
    assert completion.choices[0].message.content == "Echo: hello gateway"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    extra = completion.model_extra or {}
    assert Decimal(extra["linqra"]["cost"]["amount"]) > 0
    assert fake_openai.requests[-1]["body"]["temperature"] == 0.1


def test_streaming_with_usage_through_the_gateway(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",  # a bare catalogue name: one provider has it
        messages=[{"role": "user", "content": "tell me a long story"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == "Echo: tell me a long story"
    assert usage is not None and usage.completion_tokens == 6 and usage.prompt_tokens > 0


def test_local_fallback_is_labelled(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gemini:gemini-2.0-flash", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content.startswith("[local model]")
    assert (completion.model_extra or {})["linqra"]["fallback"]["provider"] == "local"


def test_models_and_usage(client: openai.OpenAI, gateway_url: str) -> None:
    ids = {m.id for m in client.models.list()}
    assert {
        "openai:gpt-4o",
        "anthropic:claude-sonnet-4-5",
        "gemini:gemini-2.5-pro",
        "local:local",
    } <= ids
    for _ in range(2):
        client.chat.completions.create(
            model="openai:gpt-4o-mini", messages=[{"role": "user", "content": "count me"}]
        )
    with httpx.Client(base_url=gateway_url, headers={"X-Team-Id": "team-llm"}) as api:
        by_model = {
            row["model"]: row
            for row in api.get("/v1/usage", params={"group_by": "model"}).json()["items"]
        }
        assert (
            by_model["gpt-4o-mini"]["calls"] == 2 and Decimal(by_model["gpt-4o-mini"]["cost"]) > 0
        )
        days = api.get("/v1/usage", params={"group_by": "day", "from": "2020-01-01"}).json()[
            "items"
        ]
        assert sum(row["calls"] for row in days) >= 2
        assert api.get("/v1/usage", params={"group_by": "team"}).status_code == 400
        assert api.get("/v1/usage", params={"from": "yesterday"}).json()["error"]["field"] == "from"
    with httpx.Client(base_url=gateway_url, headers={"X-Team-Id": "team-other"}) as other:
        assert other.get("/v1/usage").json()["items"] == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"model": "openai:gpt-4o", "messages": []}, 400, "messages"),
        (
            {"model": "openai:gpt-4o", "messages": [{"role": "bot", "content": "x"}]},
            400,
            "messages[0].role",
        ),
        ({"model": "gpt-unknown", "messages": [{"role": "user", "content": "x"}]}, 400, "model"),
        (
            {
                "model": "openai:gpt-4o",
                "messages": [{"role": "user", "content": "x"}],
                "temperature": 9,
            },
            400,
            "body.temperature",
        ),
        (
            {"model": "openai:rate-limited", "messages": [{"role": "user", "content": "x"}]},
            429,
            None,
        ),
    ],
)
def test_bad_chat_requests(
    gateway_url: str, body: dict[str, object], status: int, field: str | None
) -> None:
    response = httpx.post(
        f"{gateway_url}/v1/chat/completions", json=body, headers={"X-Team-Id": "team-llm"}
    )
    assert response.status_code == status, response.text
    if field:
        assert response.json()["error"]["field"] == field


def test_anthropic_model_streamed_through_the_openai_api(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="anthropic:claude-sonnet-4-5",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello from openai sdk"},
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, last = "", None
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
        if chunk.usage is not None:
            last = chunk
    assert text == "Echo: hello from openai sdk"
    assert last is not None and last.usage is not None
    assert (
        last.usage.prompt_tokens_details is not None
        and last.usage.prompt_tokens_details.cached_tokens == 5
    )
    linqra = (last.model_extra or {})["linqra"]
    assert linqra["provider"] == "anthropic" and Decimal(linqra["cost"]["amount"]) > 0
