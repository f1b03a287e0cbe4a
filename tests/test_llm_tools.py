"""Tool calls in the message format, through every adapter's official SDK against its wire protocol.

A round trip: the model is offered a tool and asks for it (``ToolCall``), the conversation goes
back with the assistant's call and the ``tool`` result, and the model answers from the result.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from linqra.errors import ValidationError
from linqra.llm.base import Model
from linqra.llm.local import LocalModel
from linqra.llm.types import (
    Delta,
    Message,
    ModelResponse,
    ModelSettings,
    ToolCallDelta,
    parse_messages,
    parse_settings,
)

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


def _provider(kind: str, servers: dict[str, Any]) -> Any:
    fake = servers[kind]
    if kind == "openai":
        from linqra.llm.openai import OpenAIProvider

        return OpenAIProvider("openai", base_url=fake.base_url, api_key="k", timeout=5)
    if kind == "anthropic":
        from linqra.llm.anthropic import AnthropicProvider

        return AnthropicProvider("anthropic", base_url=fake.url, api_key="k", timeout=5)
    if kind == "gemini":
        from linqra.llm.gemini import GeminiProvider

        return GeminiProvider("gemini", base_url=fake.url, api_key="k", timeout=5)
    from linqra.llm.cohere import CohereProvider

    return CohereProvider("cohere", base_url=fake.url, api_key="k", timeout=5)


async def _call(
    model: Model, messages: list[Message], settings: ModelSettings, stream: bool
) -> ModelResponse:
    if not stream:
        return await model.request(messages, settings)
    final = None
    pieces: dict[int, list[str]] = {}
    async for event in model.request_stream(messages, settings):
        if isinstance(event, ModelResponse):
            final = event
        elif isinstance(event, ToolCallDelta):  # tool calls stream as they arrive
            entry = pieces.setdefault(event.index, ["", "", ""])
            entry[0] = event.id or entry[0]
            entry[1] = event.name or entry[1]
            entry[2] += event.arguments
        else:
            assert isinstance(event, Delta)
    assert final is not None
    assert [tuple(v) for _, v in sorted(pieces.items())] == [
        (c.id, c.name, c.arguments) for c in final.tool_calls
    ]  # the pieces add up to the final calls
    return final


@pytest.fixture
def servers(
    fake_openai: Any, fake_anthropic: Any, fake_gemini: Any, fake_cohere: Any
) -> dict[str, Any]:
    return {
        "openai": fake_openai,
        "anthropic": fake_anthropic,
        "gemini": fake_gemini,
        "cohere": fake_cohere,
    }


@pytest.mark.parametrize("stream", [False, True], ids=["request", "stream"])
@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini", "cohere"])
async def test_tool_call_round_trip(kind: str, stream: bool, servers: dict[str, Any]) -> None:
    provider = _provider(kind, servers)
    model = provider.model("m-1")
    settings = parse_settings({"tools": TOOLS})
    question = [Message("user", "where is order 42")]
    try:
        first = await _call(model, question, settings, stream)
        assert first.text == "" and len(first.tool_calls) == 1
        call = first.tool_calls[0]
        assert call.name == "lookup_order" and call.id
        assert call.parsed_arguments() == {"query": "where is order 42"}  # stream pieces joined
        assert first.usage.output_tokens == 9  # the provider's count, not ours

        result = Message("tool", json.dumps({"status": "shipped"}), tool_call_id=call.id)
        conversation = [*question, Message("assistant", "", tool_calls=(call,)), result]
        second = await _call(model, conversation, settings, stream)
    finally:
        await provider.aclose()
    assert "shipped" in second.text and not second.tool_calls

    sent = servers[kind].requests[-1]["body"]
    if kind == "openai":
        assert sent["tools"][0]["function"]["name"] == "lookup_order"
        assert sent["messages"][1]["tool_calls"][0]["id"] == call.id
        assert sent["messages"][2] == {
            "role": "tool",
            "content": result.content,
            "tool_call_id": call.id,
        }
    elif kind == "anthropic":
        assert sent["tools"][0]["input_schema"]["required"] == ["query"]
        assert sent["messages"][1]["content"][0] == {
            "type": "tool_use",
            "id": call.id,
            "name": "lookup_order",
            "input": {"query": "where is order 42"},
        }
        assert sent["messages"][2]["content"][0]["tool_use_id"] == call.id
    elif kind == "gemini":
        assert sent["tools"][0]["functionDeclarations"][0]["name"] == "lookup_order"
        assert sent["contents"][1]["parts"][0]["functionCall"]["name"] == "lookup_order"
        response = sent["contents"][2]["parts"][0]["functionResponse"]
        assert response["name"] == "lookup_order" and response["response"] == {"status": "shipped"}
    else:
        assert sent["messages"][1]["tool_calls"][0]["function"]["name"] == "lookup_order"
        assert (
            sent["messages"][2]["role"] == "tool" and sent["messages"][2]["tool_call_id"] == call.id
        )


async def test_tool_choice_is_sent_in_each_vendor_shape(servers: dict[str, Any]) -> None:
    settings = parse_settings(
        {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "lookup_order"}}}
    )
    for kind in ("openai", "anthropic"):
        provider = _provider(kind, servers)
        await provider.model("m-1").request([Message("user", "order 7")], settings)
        await provider.aclose()
    assert servers["openai"].requests[-1]["body"]["tool_choice"] == {
        "type": "function",
        "function": {"name": "lookup_order"},
    }
    assert servers["anthropic"].requests[-1]["body"]["tool_choice"] == {
        "type": "tool",
        "name": "lookup_order",
    }


async def test_local_model_calls_a_named_tool_then_quotes_its_result() -> None:
    model = LocalModel()
    settings = parse_settings({"tools": TOOLS})
    question = [Message("user", "Please lookup order 42 for me.")]
    first = await model.request(question, settings)
    assert first.finish_reason == "tool_calls" and first.tool_calls[0].name == "lookup_order"
    assert first.tool_calls[0].parsed_arguments() == {"query": "Please lookup order 42 for me."}
    conversation = [
        *question,
        Message("assistant", "", tool_calls=first.tool_calls),
        Message("tool", "Order 42 shipped on Monday.", tool_call_id=first.tool_calls[0].id),
    ]
    second = await model.request(conversation, settings)
    assert second.text.startswith("[local model]") and "Order 42 shipped on Monday." in second.text
    unrelated = await model.request([Message("user", "What time is it?")], settings)
    assert not unrelated.tool_calls  # auto: only when the question names the tool


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"tools": "x"}, "s.tools"),
        (
            {"tools": [{"type": "function", "function": {"name": "bad name!"}}]},
            "s.tools[0].function.name",
        ),
        (
            {
                "tools": [
                    {"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}
                ]
            },
            "s.tools[0].function.parameters",
        ),
        ({"tools": TOOLS * 2}, "s.tools[1].function.name"),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "s.tool_choice"),
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "other"}}},
            "s.tool_choice",
        ),
        ({"tool_choice": "required"}, "s.tool_choice"),
    ],
)
def test_bad_tools_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_settings(raw, "s")
    assert err.value.field == field


def test_tool_messages_need_their_call_id() -> None:
    with pytest.raises(ValidationError) as err:
        parse_messages([{"role": "tool", "content": "42"}], "messages")
    assert err.value.field == "messages[0].tool_call_id"
    with pytest.raises(ValidationError) as err:
        parse_messages(
            [{"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}], "messages"
        )
    assert err.value.field == "messages[0].tool_calls[0]"
    parsed = parse_messages(
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a": 1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ]
    )
    assert parsed[0].tool_calls[0].parsed_arguments() == {"a": 1} and parsed[1].tool_call_id == "c1"
