"""Typed messages, settings, streaming deltas and usage: the wire format every model speaks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from linqra.errors import ValidationError

__all__ = [
    "Delta",
    "Message",
    "ModelResponse",
    "ModelSettings",
    "Usage",
    "parse_messages",
    "parse_settings",
]

Role = Literal["system", "user", "assistant", "tool"]
ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ModelSettings:
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    json_mode: bool = False


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
class ModelResponse:
    text: str
    model: str
    provider: str
    usage: Usage
    finish_reason: str = "stop"
    response_id: str = ""
    labels: Mapping[str, Any] = field(default_factory=dict)


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
        if not isinstance(content, str):
            raise ValidationError("content must be text", field=f"{where}.content")
        messages.append(Message(role, content, item.get("name")))
    return messages


def parse_settings(
    raw: Mapping[str, Any] | None, field_name: str = "llmConfig.settings"
) -> ModelSettings:
    """Model settings (``temperature`` 0-2, ``max_tokens`` ≥ 1, ``top_p`` 0-1, ``stop``, ``json_mode``)."""
    raw = dict(raw or {})
    unknown = set(raw) - {
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "top_p",
        "stop",
        "json_mode",
    }
    if unknown:
        raise ValidationError(
            f"unknown setting {sorted(unknown)[0]!r}", field=f"{field_name}.{sorted(unknown)[0]}"
        )
    temperature = raw.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        raise ValidationError(
            "temperature must be a number from 0 to 2", field=f"{field_name}.temperature"
        )
    max_tokens = raw.get("max_tokens", raw.get("max_completion_tokens"))
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise ValidationError(
            "max_tokens must be a whole number ≥ 1", field=f"{field_name}.max_tokens"
        )
    top_p = raw.get("top_p")
    if top_p is not None and (not isinstance(top_p, int | float) or not 0 <= top_p <= 1):
        raise ValidationError("top_p must be a number from 0 to 1", field=f"{field_name}.top_p")
    stop = raw.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    return ModelSettings(
        temperature, max_tokens, top_p, tuple(stop), bool(raw.get("json_mode", False))
    )
