"""Anthropic's Messages wire format, on the official async ``anthropic`` SDK.

System messages go to ``system``; usage comes from ``message_start`` (input and cache tokens)
and ``message_delta`` (cumulative output tokens) when streaming. SDK retries are off.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from linqra.errors import ProviderError
from linqra.llm._sdk import SDKProvider, status_error
from linqra.llm.base import StreamEvent
from linqra.llm.types import (
    Delta,
    Message,
    ModelResponse,
    ModelSettings,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = ["AnthropicModel", "AnthropicProvider", "translate_errors"]

DEFAULT_MAX_TOKENS = 1024  # Anthropic requires max_tokens

# Anthropic's stop reasons in OpenAI's words (``pause_turn``, a paused server-tool turn, ends
# this response as a stop does); a reason Anthropic adds later reads as ``stop``
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicProvider(SDKProvider):
    sdk_module = "anthropic"
    default_key_env = "ANTHROPIC_API_KEY"

    def _make_client(self) -> Any:
        try:
            from anthropic import AsyncAnthropic
        except ImportError as exc:
            raise ProviderError("the anthropic provider needs: pip install anthropic") from exc
        return AsyncAnthropic(
            api_key=self.api_key(), base_url=self.base_url, max_retries=0, timeout=self.timeout
        )

    def model(self, name: str) -> AnthropicModel:
        return AnthropicModel(self, name)


class AnthropicModel:
    def __init__(self, provider: AnthropicProvider, name: str) -> None:
        self._provider = provider
        self.provider = provider.name
        self.name = name

    def _args(self, messages: Sequence[Message], settings: ModelSettings) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        args: dict[str, Any] = {
            "model": self.name,
            "max_tokens": settings.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": _wire_messages(messages),
        }
        if settings.tools:
            args["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
                for t in settings.tools
            ]
        if settings.tool_choice:
            choice = settings.tool_choice
            args["tool_choice"] = (
                {"type": {"auto": "auto", "none": "none", "required": "any"}[choice]}
                if choice in ("auto", "none", "required")
                else {"type": "tool", "name": choice}
            )
        if system:
            args["system"] = system
        # The current Messages API has no sampling parameters (temperature, top_p): they are not sent.
        if settings.stop:
            args["stop_sequences"] = list(settings.stop)
        return args

    async def request(self, messages: Sequence[Message], settings: ModelSettings) -> ModelResponse:
        with translate_errors(self.provider):
            message = await self._provider.client().messages.create(
                **self._args(messages, settings)
            )
        text = "".join(getattr(block, "text", "") for block in message.content)
        calls = tuple(
            ToolCall(block.id, block.name, json.dumps(block.input or {}))
            for block in message.content
            if getattr(block, "type", "") == "tool_use"
        )
        return ModelResponse(
            text,
            message.model or self.name,
            self.provider,
            _usage(message.usage),
            _finish_reason(message.stop_reason),
            message.id or "",
            tool_calls=calls,
        )

    async def request_stream(
        self, messages: Sequence[Message], settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        parts: list[str] = []
        calls: dict[int, list[str]] = {}  # block index → [id, name, input JSON so far]
        start_usage: Any = None
        output_tokens: int | None = None
        finish, model, message_id = "stop", self.name, ""
        with translate_errors(self.provider):
            stream = await self._provider.client().messages.create(
                **self._args(messages, settings), stream=True
            )
            try:
                async for event in stream:
                    kind = getattr(event, "type", "")
                    if kind == "message_start":
                        start_usage = event.message.usage
                        model, message_id = event.message.model or model, event.message.id or ""
                    elif (
                        kind == "content_block_delta"
                        and getattr(event.delta, "type", "") == "text_delta"
                    ):
                        parts.append(event.delta.text)
                        yield Delta(event.delta.text)
                    elif (
                        kind == "content_block_start"
                        and getattr(event.content_block, "type", "") == "tool_use"
                    ):
                        block = event.content_block
                        ordinal = len(calls)  # tool calls count from 0, blocks do not
                        calls[event.index] = [block.id, block.name, ""]
                        yield ToolCallDelta(ordinal, block.id, block.name, "")
                    elif (
                        kind == "content_block_delta"
                        and getattr(event.delta, "type", "") == "input_json_delta"
                        and event.index in calls
                    ):
                        piece = event.delta.partial_json or ""
                        calls[event.index][2] += piece
                        yield ToolCallDelta(list(calls).index(event.index), arguments=piece)
                    elif kind == "message_delta":
                        output_tokens = int(event.usage.output_tokens)  # cumulative
                        if event.delta.stop_reason:
                            finish = _finish_reason(event.delta.stop_reason)
            finally:
                await stream.close()
        if start_usage is None or output_tokens is None:
            raise ProviderError(
                f"{self.provider}: stream ended without usage", code="missing_usage"
            )
        usage = _usage(start_usage, output_tokens)
        tool_calls = tuple(ToolCall(c[0], c[1], c[2] or "{}") for _, c in sorted(calls.items()))
        yield ModelResponse(
            "".join(parts), model, self.provider, usage, finish, message_id, tool_calls=tool_calls
        )


def _wire_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Anthropic's turns: tool calls are ``tool_use`` blocks of the assistant turn, tool results
    ``tool_result`` blocks of the next user turn (consecutive results share one turn)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            previous = out[-1] if out else None
            if (
                previous is not None
                and previous["role"] == "user"
                and isinstance(previous["content"], list)
                and previous["content"]
                and previous["content"][-1].get("type") == "tool_result"
            ):
                previous["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif m.role == "assistant" and m.tool_calls:
            blocks: list[dict[str, Any]] = (
                [{"type": "text", "text": m.content}] if m.content else []
            )
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.parsed_arguments()}
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append(
                {"role": "assistant" if m.role == "assistant" else "user", "content": m.content}
            )
    return out


def _finish_reason(stop_reason: str | None) -> str:
    return _FINISH_REASONS.get(stop_reason or "", "stop")


def _usage(raw: Any, output_tokens: int | None = None) -> Usage:
    return Usage(
        input_tokens=int(getattr(raw, "input_tokens", 0) or 0),
        cache_read_tokens=int(getattr(raw, "cache_read_input_tokens", 0) or 0),
        cache_write_tokens=int(getattr(raw, "cache_creation_input_tokens", 0) or 0),
        output_tokens=int(
            output_tokens if output_tokens is not None else getattr(raw, "output_tokens", 0) or 0
        ),
    )


@contextlib.contextmanager
def translate_errors(provider: str) -> Iterator[None]:
    import anthropic

    try:
        yield
    except anthropic.APIStatusError as exc:
        header = exc.response.headers.get("retry-after") if exc.response is not None else None
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = (
            (body.get("error") or {}).get("message")
            if isinstance(body.get("error"), dict)
            else None
        )
        raise status_error(provider, exc.status_code, detail or exc.message, header) from exc
    except anthropic.APITimeoutError as exc:
        raise ProviderError(
            f"{provider}: timed out", retryable=True, code="provider_timeout"
        ) from exc
    except anthropic.APIConnectionError as exc:
        raise ProviderError(
            f"{provider}: cannot connect: {exc}", retryable=True, code="provider_unreachable"
        ) from exc
    except anthropic.APIError as exc:
        raise ProviderError(f"{provider}: {exc}", code="provider_error") from exc
    except ValueError as exc:
        raise ProviderError(
            f"{provider}: malformed response: {exc}", code="provider_error"
        ) from exc
