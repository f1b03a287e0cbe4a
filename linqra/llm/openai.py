"""The OpenAI chat-completions wire format, on the official async ``openai`` SDK.

Serves OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp) by base URL. SDK
retries are off: the router owns the one retry loop. Streams ask for usage
(``stream_options.include_usage``), so a streamed call is priced from the provider's own count.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
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

__all__ = ["OpenAIModel", "OpenAIProvider", "translate_errors"]


class OpenAIProvider(SDKProvider):
    sdk_module = "openai"
    default_key_env = "OPENAI_API_KEY"
    key_optional_with_base_url = True

    def _make_client(self) -> Any:
        try:
            from openai import AsyncOpenAI
        except ImportError as exc:  # pragma: no cover - openai is a dependency
            raise ProviderError("the openai provider needs: pip install openai") from exc
        return AsyncOpenAI(
            api_key=self.api_key(), base_url=self.base_url, max_retries=0, timeout=self.timeout
        )

    def model(self, name: str) -> OpenAIModel:
        return OpenAIModel(self, name)


class OpenAIModel:
    def __init__(self, provider: OpenAIProvider, name: str) -> None:
        self._provider = provider
        self.provider = provider.name
        self.name = name

    def _args(self, messages: Sequence[Message], settings: ModelSettings) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self.name,
            "messages": [_wire_message(m) for m in messages],
        }
        if settings.tools:
            args["tools"] = [tool.to_openai() for tool in settings.tools]
        if settings.tool_choice:
            choice = settings.tool_choice
            args["tool_choice"] = (
                choice
                if choice in ("auto", "none", "required")
                else {"type": "function", "function": {"name": choice}}
            )
        if settings.temperature is not None:
            args["temperature"] = settings.temperature
        if settings.max_tokens is not None:
            args["max_tokens"] = settings.max_tokens
        if settings.top_p is not None:
            args["top_p"] = settings.top_p
        if settings.stop:
            args["stop"] = list(settings.stop)
        if settings.json_mode:
            args["response_format"] = {"type": "json_object"}
        return args

    async def request(self, messages: Sequence[Message], settings: ModelSettings) -> ModelResponse:
        with translate_errors(self.provider):
            completion = await self._provider.client().chat.completions.create(
                **self._args(messages, settings)
            )
        if not completion.choices:
            raise ProviderError(
                f"{self.provider}: response without choices", code="malformed_response"
            )
        choice = completion.choices[0]
        calls = tuple(
            ToolCall(c.id, c.function.name, c.function.arguments or "{}")
            for c in choice.message.tool_calls or ()
            if getattr(c, "function", None) is not None
        )
        return ModelResponse(
            text=choice.message.content or "",
            model=completion.model or self.name,
            provider=self.provider,
            usage=_usage(completion.usage),
            finish_reason=choice.finish_reason or "stop",
            response_id=completion.id or "",
            tool_calls=calls,
        )

    async def request_stream(
        self, messages: Sequence[Message], settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        args = self._args(messages, settings)
        parts: list[str] = []
        calls: dict[int, list[str]] = {}  # index → [id, name, arguments so far]
        usage: Usage | None = None
        finish, model, response_id = "stop", self.name, ""
        create = self._provider.client().chat.completions.with_streaming_response.create
        with translate_errors(self.provider):
            opened = create(**args, stream=True, stream_options={"include_usage": True})
            async with opened as response:
                async for chunks in chunk_batches(_body(response, self.provider)):
                    text: list[str] = []  # one read's content: one delta
                    for chunk in chunks:
                        if chunk.get("error"):
                            raise ProviderError(
                                f"{self.provider}: {_stream_error(chunk['error'])}",
                                code="provider_error",
                            )
                        model = chunk.get("model") or model
                        response_id = chunk.get("id") or response_id
                        if chunk.get("usage"):
                            usage = _usage(chunk["usage"])
                        for choice in _choices(chunk, self.provider):
                            delta = choice.get("delta") or {}
                            if delta.get("content"):
                                text.append(delta["content"])
                            for piece in delta.get("tool_calls") or ():
                                if text:  # text before a call stays before it
                                    parts.extend(text)
                                    yield Delta("".join(text))
                                    text = []
                                yield _call_delta(calls, piece)
                            if choice.get("finish_reason"):
                                finish = choice["finish_reason"]
                    if text:
                        parts.extend(text)
                        yield Delta("".join(text))
        if usage is None:
            raise ProviderError(
                f"{self.provider}: stream ended without usage", code="missing_usage"
            )
        tool_calls = tuple(ToolCall(c[0], c[1], c[2] or "{}") for _, c in sorted(calls.items()))
        yield ModelResponse(
            "".join(parts), model, self.provider, usage, finish, response_id, tool_calls=tool_calls
        )


async def _body(response: Any, provider: str) -> AsyncIterator[bytes]:
    """A streamed response's bytes; failing to read them (a cut connection, a read timeout —
    raised by whichever HTTP library the SDK runs on) is the provider's stream failing."""
    reading = aiter(response.http_response.aiter_bytes())
    while True:
        try:
            data = await anext(reading)
        except StopAsyncIteration:
            return
        except Exception as exc:
            raise ProviderError(
                f"{provider}: the stream broke off: {type(exc).__name__}: {exc}",
                retryable=True,
                code="provider_unreachable",
            ) from exc
        yield data


async def chunk_batches(body: AsyncIterator[bytes]) -> AsyncIterator[list[dict[str, Any]]]:
    """The JSON chunks of an OpenAI-style SSE body, as a list per network read, until
    ``data: [DONE]``. By hand because the SDK's own decoders (and ``httpx-sse``) yield one event
    at a time: a list per read lets a caller that fell behind turn the chunks that piled up
    into one delta, so its cost follows the reads it makes rather than the tokens sent."""
    pending, done = b"", False
    async for data in body:
        if done:
            continue  # the rest of the body is read so its connection can be used again
        pending = (pending + data).replace(b"\r\n", b"\n")
        *events, pending = pending.split(b"\n\n")
        chunks: list[dict[str, Any]] = []
        for event in events:
            payload = b"\n".join(
                line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
            )
            if not payload:
                continue  # a comment or a keep-alive
            if payload.startswith(b"[DONE]"):
                done = True
                break
            chunk = json.loads(payload)
            if isinstance(chunk, dict):
                chunks.append(chunk)
        if chunks:
            yield chunks


def _choices(chunk: dict[str, Any], provider: str) -> list[dict[str, Any]]:
    """A streamed chunk's choices, each with a ``delta`` object (or none)."""
    choices = chunk.get("choices") or []
    if not isinstance(choices, list) or not all(
        isinstance(c, dict) and isinstance(c.get("delta") or {}, dict) for c in choices
    ):
        raise ProviderError(f"{provider}: malformed stream chunk", code="provider_error")
    return choices


def _call_delta(calls: dict[int, list[str]], piece: Mapping[str, Any]) -> ToolCallDelta:
    index = int(piece.get("index") or 0)
    call = calls.setdefault(index, ["", "", ""])
    function = piece.get("function") or {}
    name, arguments = function.get("name"), function.get("arguments") or ""
    call[0] = piece.get("id") or call[0]
    call[1] = name or call[1]
    call[2] += arguments
    return ToolCallDelta(index, piece.get("id"), name, arguments)


def _stream_error(error: Any) -> str:
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return str(error["message"])
    return "an error occurred during streaming"


def _wire_message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.name:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [call.to_openai() for call in m.tool_calls]
        out["content"] = m.content or None
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def _usage(raw: Any) -> Usage:
    """The SDK's usage model (a whole response) or its JSON (a streamed chunk) in our terms."""
    if raw is None:
        raise ProviderError("response without usage", code="missing_usage")
    prompt = int(_get(raw, "prompt_tokens") or 0)
    cached = int(_get(_get(raw, "prompt_tokens_details"), "cached_tokens") or 0)
    reasoning = int(_get(_get(raw, "completion_tokens_details"), "reasoning_tokens") or 0)
    return Usage(
        input_tokens=prompt - cached,
        cache_read_tokens=cached,
        output_tokens=int(_get(raw, "completion_tokens") or 0),
        reasoning_tokens=reasoning,
    )


def _get(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)


@contextlib.contextmanager
def translate_errors(provider: str) -> Iterator[None]:
    """Vendor errors become :class:`ProviderError` here, and only here (``raise … from exc``)."""
    import openai

    try:
        yield
    except openai.APIStatusError as exc:
        header = exc.response.headers.get("retry-after") if exc.response is not None else None
        raise status_error(provider, exc.status_code, _message(exc), header) from exc
    except openai.APITimeoutError as exc:
        raise ProviderError(
            f"{provider}: timed out", retryable=True, code="provider_timeout"
        ) from exc
    except openai.APIConnectionError as exc:
        raise ProviderError(
            f"{provider}: cannot connect: {exc}", retryable=True, code="provider_unreachable"
        ) from exc
    except openai.APIError as exc:  # other protocol errors
        raise ProviderError(f"{provider}: {exc}", retryable=False, code="provider_error") from exc
    except ValueError as exc:  # a body that is not JSON (the SDK parses it)
        raise ProviderError(
            f"{provider}: malformed response: {exc}", retryable=False, code="provider_error"
        ) from exc


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", exc))
