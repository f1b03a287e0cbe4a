"""Typed messages, settings, streaming deltas and usage: the wire format every model speaks."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from linqra.errors import ValidationError

__all__ = [
    "MAX_OUTPUT_TOKENS",
    "MAX_STOP_LENGTH",
    "MAX_STOP_SEQUENCES",
    "Delta",
    "Message",
    "ModelResponse",
    "ModelSettings",
    "ToolCall",
    "ToolCallDelta",
    "ToolDefinition",
    "Usage",
    "parse_messages",
    "parse_settings",
    "parse_tools",
    "tool_call_names",
]

Role = Literal["system", "user", "assistant", "tool"]
ROLES = ("system", "user", "assistant", "tool")


MAX_OUTPUT_TOKENS = 1_000_000
"""The largest ``max_tokens`` a request may ask for (no model writes more)."""
MAX_STOP_SEQUENCES = 16
MAX_STOP_LENGTH = 1_000

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOOL_CHOICES = ("auto", "none", "required")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for; ``arguments`` is the JSON text the model wrote."""

    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> dict[str, Any]:
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {"value": value}

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A function the model may call: a name, what it does, and a JSON Schema of its arguments."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


@dataclass(frozen=True, slots=True)
class Message:
    """A chat message. An assistant message may carry ``tool_calls``; a ``tool`` message answers
    one of them by ``tool_call_id``."""

    role: Role
    content: str
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ModelSettings:
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    json_mode: bool = False
    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: str | None = None  # "auto", "none", "required" or the name of one tool


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens by kind, as the provider reported them (``estimated`` when counted locally).

    ``input_tokens`` are the *uncached* prompt tokens; cached reads and cache writes are
    counted apart because they are priced apart. ``reasoning_tokens`` are part of the output
    the provider bills at its reasoning rate.
    """

    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``usage`` object (plus our split in ``linqra``)."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cache_read_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of streamed text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call: the first piece of call ``index`` carries its ``id`` and
    ``name``; the ``arguments`` of all its pieces, joined, are its JSON arguments."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "function": {"arguments": self.arguments}}
        if self.id:
            out["id"], out["type"] = self.id, "function"
        if self.name:
            out["function"]["name"] = self.name
        return out


@dataclass(frozen=True, slots=True)
class ModelResponse:
    text: str
    model: str
    provider: str
    usage: Usage
    finish_reason: str = "stop"
    response_id: str = ""
    labels: Mapping[str, Any] = field(default_factory=dict)
    tool_calls: tuple[ToolCall, ...] = ()


def tool_call_names(messages: Sequence[Message]) -> dict[str, str]:
    """The function name of every tool call in a conversation, by call id (Gemini answers by name)."""
    return {call.id: call.name for m in messages for call in m.tool_calls}


def parse_messages(payload: Any, field_name: str = "payload") -> list[Message]:
    """Chat messages from a Linq ``payload`` (a list of ``{role, content}``) with 4xx errors."""
    if isinstance(payload, str):
        return [Message("user", payload)]
    if not isinstance(payload, Sequence) or isinstance(payload, str | bytes) or not payload:
        raise ValidationError(
            "must be a non-empty list of {role, content} messages", field=field_name
        )
    messages = []
    for i, item in enumerate(payload):
        where = f"{field_name}[{i}]"
        if not isinstance(item, Mapping):
            raise ValidationError("a message is an object {role, content}", field=where)
        role = item.get("role")
        if role not in ROLES:
            raise ValidationError(f"role must be one of {', '.join(ROLES)}", field=f"{where}.role")
        content = item.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
        tool_calls = _parse_tool_calls(item.get("tool_calls"), where) if role == "assistant" else ()
        if content is None and tool_calls:
            content = ""
        if not isinstance(content, str):
            raise ValidationError("content must be text", field=f"{where}.content")
        tool_call_id = item.get("tool_call_id")
        if role == "tool" and (not isinstance(tool_call_id, str) or not tool_call_id):
            raise ValidationError(
                "a tool message needs the tool_call_id it answers", field=f"{where}.tool_call_id"
            )
        messages.append(Message(role, content, item.get("name"), tool_calls, tool_call_id))
    return messages


def _parse_tool_calls(raw: Any, where: str) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValidationError("tool_calls must be a list", field=f"{where}.tool_calls")
    calls = []
    for j, call in enumerate(raw):
        at = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(call.get("id"), str):
            raise ValidationError(
                "a tool call is {id, type: function, function: {name, arguments}}", field=at
            )
        name, arguments = function.get("name"), function.get("arguments", "{}")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise ValidationError(
                "a tool name is 1-64 of A-Z a-z 0-9 _ -", field=f"{at}.function.name"
            )
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        calls.append(ToolCall(call["id"], name, arguments))
    return tuple(calls)


def parse_tools(raw: Any, field_name: str) -> tuple[ToolDefinition, ...]:
    """OpenAI-shaped ``tools`` (``{type: function, function: {name, description, parameters}}``)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > 128:
        raise ValidationError("tools must be a list of at most 128 functions", field=field_name)
    tools, seen = [], set()
    for i, item in enumerate(raw):
        at = f"{field_name}[{i}]"
        function = item.get("function") if isinstance(item, Mapping) else None
        if not isinstance(function, Mapping) or item.get("type", "function") != "function":
            raise ValidationError(
                "a tool is {type: function, function: {name, description?, parameters?}}", field=at
            )
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise ValidationError(
                "a tool name is 1-64 of A-Z a-z 0-9 _ -", field=f"{at}.function.name"
            )
        if name in seen:
            raise ValidationError(f"tool {name!r} is defined twice", field=f"{at}.function.name")
        seen.add(name)
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, Mapping) or parameters.get("type", "object") != "object":
            raise ValidationError(
                "parameters must be a JSON Schema object ({type: object, properties: …})",
                field=f"{at}.function.parameters",
            )
        description = function.get("description") or ""
        if not isinstance(description, str):
            raise ValidationError("description must be text", field=f"{at}.function.description")
        tools.append(ToolDefinition(name, description, dict(parameters)))
    return tuple(tools)


def _parse_tool_choice(raw: Any, tools: tuple[ToolDefinition, ...], field_name: str) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping):  # {"type": "function", "function": {"name": …}}
        raw = (
            (raw.get("function") or {}).get("name")
            if isinstance(raw.get("function"), Mapping)
            else None
        )
        if not isinstance(raw, str):
            raise ValidationError(
                'tool_choice is "auto", "none", "required" or {type: function, function: {name}}',
                field=field_name,
            )
        if raw not in {t.name for t in tools}:
            raise ValidationError(
                f"tool_choice names {raw!r}, which is not in tools", field=field_name
            )
        return raw
    if raw not in TOOL_CHOICES:
        raise ValidationError(
            'tool_choice is "auto", "none", "required" or {type: function, function: {name}}',
            field=field_name,
        )
    if raw == "required" and not tools:
        raise ValidationError('tool_choice "required" needs tools', field=field_name)
    return str(raw)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_settings(
    raw: Mapping[str, Any] | None, field_name: str = "llmConfig.settings"
) -> ModelSettings:
    """Model settings, each bounded (400 naming the setting otherwise): ``temperature`` 0-2,
    ``max_tokens`` (or ``max_completion_tokens``) 1-:data:`MAX_OUTPUT_TOKENS`, ``top_p`` 0-1,
    ``stop`` text or at most :data:`MAX_STOP_SEQUENCES` texts of at most
    :data:`MAX_STOP_LENGTH` characters, ``json_mode`` true/false, ``tools``, ``tool_choice``."""
    if raw is not None and not isinstance(raw, Mapping):
        raise ValidationError("settings are an object", field=field_name)
    raw = dict(raw or {})
    unknown = set(raw) - {
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "top_p",
        "stop",
        "json_mode",
        "tools",
        "tool_choice",
    }
    if unknown:
        raise ValidationError(
            f"unknown setting {sorted(unknown)[0]!r}", field=f"{field_name}.{sorted(unknown)[0]}"
        )
    temperature = raw.get("temperature")
    if temperature is not None and (not _number(temperature) or not 0 <= temperature <= 2):
        raise ValidationError(
            "temperature must be a number from 0 to 2", field=f"{field_name}.temperature"
        )
    name = "max_tokens" if "max_tokens" in raw else "max_completion_tokens"
    max_tokens = raw.get(name)
    if max_tokens is not None and (
        not isinstance(max_tokens, int)
        or isinstance(max_tokens, bool)
        or not 1 <= max_tokens <= MAX_OUTPUT_TOKENS
    ):
        raise ValidationError(
            f"{name} must be a whole number from 1 to {MAX_OUTPUT_TOKENS:,}",
            field=f"{field_name}.{name}",
        )
    top_p = raw.get("top_p")
    if top_p is not None and (not _number(top_p) or not 0 <= top_p <= 1):
        raise ValidationError("top_p must be a number from 0 to 1", field=f"{field_name}.top_p")
    stop = raw.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    if (
        not isinstance(stop, list | tuple)
        or len(stop) > MAX_STOP_SEQUENCES
        or not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_LENGTH for s in stop)
    ):
        raise ValidationError(
            f"stop is a text or a list of at most {MAX_STOP_SEQUENCES} texts of 1 to "
            f"{MAX_STOP_LENGTH} characters",
            field=f"{field_name}.stop",
        )
    if not isinstance(raw.get("json_mode", False), bool):
        raise ValidationError("json_mode must be true or false", field=f"{field_name}.json_mode")
    tools = parse_tools(raw.get("tools"), f"{field_name}.tools")
    tool_choice = _parse_tool_choice(raw.get("tool_choice"), tools, f"{field_name}.tool_choice")
    return ModelSettings(
        temperature,
        max_tokens,
        top_p,
        tuple(stop),
        bool(raw.get("json_mode", False)),
        tools,
        tool_choice,
    )
