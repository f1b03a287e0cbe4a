"""The OpenAI-compatible API, driven by the official openai client against the app in process
(OpenAI and Anthropic are their local fakes)."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest
from fastapi.testclient import TestClient

from linqra.config import Settings
from tests.support.fake_openai import FakeOpenAI
from tests.support.http import TeamClient


@pytest.fixture
def settings(llm_settings: Settings) -> Settings:
    return llm_settings


@pytest.fixture
def sdk(client: TestClient) -> openai.OpenAI:
    """The openai SDK sending its requests through the in-process app, as team ``team-llm``."""
    return openai.OpenAI(
        base_url=f"{client.base_url}/v1",
        api_key="unused",
        max_retries=0,
        default_headers={"X-Team-Id": "team-llm"},
        http_client=client,
    )


def test_chat_completion_through_the_gateway(sdk: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="openai:gpt-4o",
        messages=[{"role": "user", "content": "hello gateway"}],
        temperature=0.1,
    )
    assert completion.choices[0].message.content == "Echo: hello gateway"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    extra = completion.model_extra or {}
    assert Decimal(extra["linqra"]["cost"]["amount"]) > 0
    assert fake_openai.requests[-1]["body"]["temperature"] == 0.1


def test_streaming_with_usage_through_the_gateway(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="gpt-4o",  # a bare catalogue name: one provider has it
        messages=[{"role": "user", "content": "tell me a long story"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, models = "", None, []
    for chunk in stream:
        models.append(chunk.model)
        for choice in chunk.choices:
            text += choice.delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == "Echo: tell me a long story"
    assert usage is not None and usage.completion_tokens == 6 and usage.prompt_tokens > 0
    assert len(models) > 3 and set(models) == {"gpt-4o"}, models  # every chunk names it


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_through_the_gateway(sdk: openai.OpenAI, stream: bool) -> None:
    question = {"role": "user", "content": "what is the weather in Oslo"}
    kwargs = {"model": "openai:gpt-4o", "messages": [question], "tools": TOOLS}
    if not stream:
        message = sdk.chat.completions.create(**kwargs).choices[0].message  # type: ignore[call-overload]
        calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []]
    else:
        pieces: dict[int, list[str]] = {}
        finish = None
        chunks_with_calls = 0
        for chunk in sdk.chat.completions.create(**kwargs, stream=True):  # type: ignore[call-overload]
            for choice in chunk.choices:
                chunks_with_calls += bool(choice.delta.tool_calls)
                for piece in choice.delta.tool_calls or []:
                    entry = pieces.setdefault(piece.index, ["", "", ""])
                    entry[0] = piece.id or entry[0]
                    entry[1] = piece.function.name or entry[1]
                    entry[2] += piece.function.arguments or ""
                finish = choice.finish_reason or finish
        calls = [tuple(v) for _, v in sorted(pieces.items())]
        assert finish == "tool_calls" and chunks_with_calls >= 2  # arguments stream in pieces
    assert len(calls) == 1 and calls[0][1] == "get_weather"
    assert json.loads(calls[0][2]) == {"query": "what is the weather in Oslo"}
    answer = sdk.chat.completions.create(
        model="openai:gpt-4o",
        messages=[
            question,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": calls[0][0],
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": calls[0][2]},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": calls[0][0], "content": "Oslo: 4 C and rain"},
        ],
        tools=TOOLS,  # type: ignore[arg-type]
    )
    assert answer.choices[0].message.content == "Echo: Oslo: 4 C and rain"


def test_bad_tools_are_a_400_naming_the_field(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(
            model="openai:gpt-4o",
            messages=[{"role": "tool", "content": "x"}],
        )
    assert err.value.body["field"] == "messages[0].tool_call_id"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(
            model="openai:gpt-4o",
            messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "function", "function": {"name": "no spaces allowed"}}],
        )
    assert err.value.body["field"] == "body.tools[0].function.name"  # type: ignore[index]


def test_local_fallback_is_labelled(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="gemini:gemini-2.0-flash", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content.startswith("[local model]")
    assert (completion.model_extra or {})["linqra"]["fallback"]["provider"] == "local"


def test_models_and_usage(sdk: openai.OpenAI, client: TestClient) -> None:
    ids = {m.id for m in sdk.models.list()}
    assert {
        "openai:gpt-4o",
        "anthropic:claude-sonnet-4-5",
        "gemini:gemini-2.5-pro",
        "local:local",
    } <= ids
    for _ in range(2):
        sdk.chat.completions.create(
            model="openai:gpt-4o-mini", messages=[{"role": "user", "content": "count me"}]
        )
    api = TeamClient(client, "team-llm")
    by_model = {
        row["model"]: row
        for row in api.get("/v1/usage", params={"group_by": "model"}).json()["items"]
    }
    assert by_model["gpt-4o-mini"]["calls"] == 2 and Decimal(by_model["gpt-4o-mini"]["cost"]) > 0
    days = api.get("/v1/usage", params={"group_by": "day", "from": "2020-01-01"}).json()["items"]
    assert sum(row["calls"] for row in days) >= 2
    assert api.get("/v1/usage", params={"group_by": "team"}).status_code == 400
    assert api.get("/v1/usage", params={"from": "yesterday"}).json()["error"]["field"] == "from"
    other = TeamClient(client, "team-other")
    assert other.get("/v1/usage").json()["items"] == []


def test_team_price_override_is_charged_and_recorded(client: TestClient) -> None:
    api = TeamClient(client, "team-priced")
    rates = {"input": "1.00", "output": "2.00", "cache_read": "0.50"}
    put = api.put("/v1/models/openai:gpt-4o/price", json=rates)
    assert put.status_code == 200 and put.json()["price_version"].startswith("team:1@")
    done = api.post(
        "/v1/chat/completions",
        json={"model": "openai:gpt-4o", "messages": [{"role": "user", "content": "price me"}]},
    ).json()
    usage, linqra = done["usage"], done["linqra"]
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    expected = (
        (usage["prompt_tokens"] - cached) * Decimal("1.00")
        + cached * Decimal("0.50")
        + usage["completion_tokens"] * Decimal("2.00")
    ) / Decimal(1_000_000)
    assert Decimal(linqra["cost"]["amount"]) == expected
    assert linqra["cost"]["price_version"] == put.json()["price_version"]
    model = next(m for m in api.get("/v1/models").json()["data"] if m["id"] == "openai:gpt-4o")
    assert model["linqra"]["override"] is True
    assert model["linqra"]["price_per_million"]["output"] == "2.00"
    # another team still pays the catalogue price
    other = api.get("/v1/models", headers={"X-Team-Id": "team-unpriced"}).json()["data"]
    assert next(m for m in other if m["id"] == "openai:gpt-4o")["linqra"]["override"] is False
    # bad input names the field; removing the override restores the catalogue price
    bad = api.put("/v1/models/openai:gpt-4o/price", json={"input": "-1", "output": "2"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "input"
    bad = api.put("/v1/models/openai:gpt-4o/price", json={"input": "1", "output": "x"})
    assert bad.json()["error"]["field"] == "output"
    bad = api.put("/v1/models/nosuch:model/price", json={"input": "1", "output": "1"})
    assert bad.status_code == 400 and "unknown provider" in bad.json()["error"]["message"]
    assert api.delete("/v1/models/openai:gpt-4o/price").status_code == 204
    assert api.delete("/v1/models/openai:gpt-4o/price").status_code == 404
    again = api.post(
        "/v1/chat/completions",
        json={"model": "openai:gpt-4o", "messages": [{"role": "user", "content": "price me"}]},
    ).json()
    assert (
        again["linqra"]["cost"]["price_version"] == model["linqra"]["price_version"].split("@")[1]
    )


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
    client: TestClient, body: dict[str, object], status: int, field: str | None
) -> None:
    response = client.post("/v1/chat/completions", json=body, headers={"X-Team-Id": "team-llm"})
    assert response.status_code == status, response.text
    if field:
        assert response.json()["error"]["field"] == field


def test_anthropic_model_streamed_through_the_openai_api(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
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


def test_the_model_list_says_which_providers_the_local_model_answers_for(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key for a provider (the team's or the environment's): its models are listed with
    ``local_fallback``, as a call to them is answered by the local model (gemini here, as in
    ``test_local_fallback_is_labelled``); a team's own key lifts it for that team, one in the
    environment for every team."""
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    team, other = TeamClient(client, "team-keys"), TeamClient(client, "team-keys-other")

    def fallback(api: TeamClient) -> dict[str, bool]:
        models = api.get("/v1/models").json()["data"]
        return {m["id"]: m["linqra"]["local_fallback"] for m in models}

    assert fallback(team)["gemini:gemini-2.5-pro"] and not fallback(team)["local:local"]
    saved = team.put("/v1/secrets/gemini", json={"value": "sk-test-" + "g" * 32})
    assert saved.status_code == 200, saved.text
    assert not fallback(team)["gemini:gemini-2.5-pro"]
    assert fallback(other)["gemini:gemini-2.5-pro"]
    monkeypatch.setenv("GEMINI_API_KEY", "sk-test-environment")
    assert not fallback(other)["gemini:gemini-2.5-pro"]
