"""Google's Gemini ``generateContent`` wire format, on the official ``google-genai`` SDK.

System messages become ``system_instruction``; ``assistant`` turns are ``model`` turns. Every
chunk of a stream carries ``usage_metadata`` and the last one is complete, so streamed calls are
priced from Google's own count. Thinking tokens are billed as output (and counted as reasoning).

The SDK speaks through an ``httpx`` client of ours, for one reason: closing a stream early must
close its HTTP response at once, and the SDK's own stream only lets go of it when the garbage
collector breaks a reference cycle (seconds or minutes later, the model generating meanwhile).
So each stream records the responses it opened (an ``httpx`` response hook, scoped to the
stream by a context variable) and closes them when it ends, however it ends.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from contextvars import ContextVar
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
    tool_call_names,
)

__all__ = ["GeminiModel", "GeminiProvider", "translate_errors"]

# Gemini's finish reasons in OpenAI's words; the unspecified ones (``OTHER``,
# ``MALFORMED_FUNCTION_CALL``, …) and any Google adds later read as ``stop``
_FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **dict.fromkeys(
        (
            "SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
            "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
        ),
        "content_filter",
    ),
}  # fmt: skip


# the HTTP responses opened by the stream being advanced (set only around each step of a stream)
_opened_by_stream: ContextVar[list[Any] | None] = ContextVar("gemini_stream", default=None)


async def _record_response(response: Any) -> None:
    """``httpx`` response hook: a stream's response is remembered by the stream."""
    opened = _opened_by_stream.get()
    if opened is not None:
        opened.append(response)


@contextlib.contextmanager
def _recording(opened: list[Any]) -> Iterator[None]:
    token = _opened_by_stream.set(opened)
    try:
        yield
    finally:
        _opened_by_stream.reset(token)


class GeminiProvider(SDKProvider):
    sdk_module = "google.genai"
    default_key_env = "GEMINI_API_KEY"
    _http: Any = None  # the HTTP client of the SDK client built last

    def _make_client(self) -> Any:
        try:
            import httpx
            from google import genai
            from google.genai import types
        except ImportError as exc:
            raise ProviderError("the gemini provider needs: pip install google-genai") from exc
        api_key = self.api_key()
        self._http = http = httpx.AsyncClient(
            timeout=self.timeout, event_hooks={"response": [_record_response]}
        )
        options = types.HttpOptions(
            base_url=self.base_url,
            api_version="v1beta",
            timeout=int(self.timeout * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
            httpx_async_client=http,
        )
        return genai.Client(api_key=api_key, http_options=options)

    async def _close_client(self, client: Any) -> None:
        with contextlib.suppress(Exception):
            await client.aio.aclose()
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def model(self, name: str) -> GeminiModel:
        return GeminiModel(self, name)


class GeminiModel:
    def __init__(self, provider: GeminiProvider, name: str) -> None:
        self._provider = provider
        self.provider = provider.name
        self.name = name

    def _args(self, messages: Sequence[Message], settings: ModelSettings) -> dict[str, Any]:
        from google.genai import types

        system = "\n\n".join(m.content for m in messages if m.role == "system")
        contents = _contents(messages)
        tools: list[Any] | None = None
        tool_config = None
        if settings.tools:
            tools = [
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name=t.name,
                            description=t.description or None,
                            parameters_json_schema=dict(t.parameters),
                        )
                        for t in settings.tools
                    ]
                )
            ]
        if settings.tool_choice:
            choice = settings.tool_choice
            mode = types.FunctionCallingConfigMode(
                {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(choice, "ANY")
            )
            tool_config = types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(
                    mode=mode,
                    allowed_function_names=None
                    if choice in ("auto", "none", "required")
                    else [choice],
                )
            )
        config = types.GenerateContentConfig(
            tools=tools,
            tool_config=tool_config,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
            if tools
            else None,
            system_instruction=system or None,
            temperature=settings.temperature,
            max_output_tokens=settings.max_tokens,
            top_p=settings.top_p,
            stop_sequences=list(settings.stop) or None,
            response_mime_type="application/json" if settings.json_mode else None,
        )
        return {"model": self.name, "contents": contents, "config": config}

    async def request(self, messages: Sequence[Message], settings: ModelSettings) -> ModelResponse:
        with translate_errors(self.provider):
            response = await self._provider.client().aio.models.generate_content(
                **self._args(messages, settings)
            )
            text = _text(response)
            calls = _calls(response, 0)
        return ModelResponse(
            text,
            response.model_version or self.name,
            self.provider,
            _usage(response.usage_metadata),
            _finish(response, bool(calls)),
            response.response_id or "",
            tool_calls=tuple(calls),
        )

    async def request_stream(
        self, messages: Sequence[Message], settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        parts: list[str] = []
        calls: list[ToolCall] = []
        last: Any = None
        opened: list[Any] = []  # the HTTP responses this stream opened upstream
        with translate_errors(self.provider):
            stream = await self._provider.client().aio.models.generate_content_stream(
                **self._args(messages, settings)
            )
            try:
                while True:
                    with _recording(opened):
                        chunk = await anext(stream, None)
                    if chunk is None:
                        break
                    last = chunk
                    text = _text(chunk)
                    if text:
                        parts.append(text)
                        yield Delta(text)
                    fresh = _calls(chunk, len(calls))
                    for i, call in enumerate(fresh, start=len(calls)):  # Gemini sends calls whole
                        yield ToolCallDelta(i, call.id, call.name, call.arguments)
                    calls += fresh
            finally:  # also when the consumer stops early: the upstream stops generating
                await stream.aclose()
                for response in opened:
                    await response.aclose()
        if last is None or last.usage_metadata is None:
            raise ProviderError(
                f"{self.provider}: stream ended without usage", code="missing_usage"
            )
        yield ModelResponse(
            "".join(parts),
            last.model_version or self.name,
            self.provider,
            _usage(last.usage_metadata),
            _finish(last, bool(calls)),
            last.response_id or "",
            tool_calls=tuple(calls),
        )


def _contents(messages: Sequence[Message]) -> list[Any]:
    """Gemini's turns: tool calls are ``function_call`` parts of a model turn; a tool result is a
    ``function_response`` part of a user turn, named after the call it answers."""
    from google.genai import types

    names = tool_call_names(messages)
    contents = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            try:
                result = json.loads(m.content)
            except ValueError:
                result = m.content
            name = names.get(m.tool_call_id or "", m.name or "tool")
            part = types.Part(
                function_response=types.FunctionResponse(
                    id=m.tool_call_id,
                    name=name,
                    response=result if isinstance(result, dict) else {"result": result},
                )
            )
            contents.append(types.Content(role="user", parts=[part]))
            continue
        parts = [types.Part(text=m.content)] if m.content or not m.tool_calls else []
        parts += [
            types.Part(
                function_call=types.FunctionCall(id=c.id, name=c.name, args=c.parsed_arguments())
            )
            for c in m.tool_calls
        ]
        contents.append(
            types.Content(role="model" if m.role == "assistant" else "user", parts=parts)
        )
    return contents


def _text(response: Any) -> str:
    """The text parts of the first candidate (``response.text`` warns when there are calls)."""
    candidates = getattr(response, "candidates", None) or []
    content = getattr(candidates[0], "content", None) if candidates else None
    return "".join(
        part.text
        for part in (getattr(content, "parts", None) or [])
        if getattr(part, "text", None) and not getattr(part, "thought", False)
    )


def _calls(response: Any, start: int) -> list[ToolCall]:
    return [
        ToolCall(
            call.id or f"call_{start + i}",
            call.name or "",
            json.dumps(dict(call.args or {})),
        )
        for i, call in enumerate(getattr(response, "function_calls", None) or [])
    ]


def _finish(response: Any, called: bool) -> str:
    """The first candidate's finish reason in OpenAI's words. Gemini ends a turn that calls
    tools with ``STOP``: with calls, that is ``tool_calls``."""
    candidates = getattr(response, "candidates", None) or []
    reason = getattr(candidates[0], "finish_reason", None) if candidates else None
    word = _FINISH_REASONS.get(str(getattr(reason, "value", reason) or "STOP").upper(), "stop")
    return "tool_calls" if called and word == "stop" else word


def _usage(meta: Any) -> Usage:
    if meta is None:
        raise ProviderError("gemini: response without usage_metadata", code="missing_usage")
    prompt = int(meta.prompt_token_count or 0)
    cached = int(meta.cached_content_token_count or 0)
    thoughts = int(meta.thoughts_token_count or 0)
    return Usage(
        input_tokens=prompt - cached,
        cache_read_tokens=cached,
        output_tokens=int(meta.candidates_token_count or 0) + thoughts,
        reasoning_tokens=thoughts,
    )


@contextlib.contextmanager
def translate_errors(provider: str) -> Iterator[None]:
    import httpx
    from google.genai import errors

    try:
        yield
    except errors.APIError as exc:
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        header = headers.get("retry-after") if hasattr(headers, "get") else None
        raise status_error(provider, int(exc.code or 0), exc.message or exc, header) from exc
    except httpx.TimeoutException as exc:  # the SDK speaks through our httpx client
        raise ProviderError(
            f"{provider}: timed out", retryable=True, code="provider_timeout"
        ) from exc
    except (httpx.TransportError, OSError) as exc:  # refused, reset, DNS, a stream cut mid-way
        raise ProviderError(
            f"{provider}: cannot connect: {exc or type(exc).__name__}",
            retryable=True,
            code="provider_unreachable",
        ) from exc
    except (ValueError, KeyError) as exc:
        raise ProviderError(
            f"{provider}: malformed response: {exc}", code="provider_error"
        ) from exc
