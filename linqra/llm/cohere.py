"""Cohere's v2 Chat wire format, on the official ``cohere`` SDK (optional extra: ``[cohere]``).

Usage is taken from ``usage.billed_units`` (what Cohere bills); streams report it in the
``message-end`` event. SDK retries are off (``request_options.max_retries = 0``). The SDK lets
``httpx``'s own errors through when Cohere cannot be reached or does not answer in time: they
are retryable :class:`ProviderError` here, as every vendor's are.
"""

from __future__ import annotations

import contextlib
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

__all__ = ["NO_RETRIES", "CohereModel", "CohereProvider", "translate_errors"]

NO_RETRIES: dict[str, Any] = {"max_retries": 0}

# Cohere's finish reasons in OpenAI's words; ``ERROR`` and ``TIMEOUT`` (the generation stopped
# on Cohere's side) and any reason Cohere adds later read as ``stop``
_FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR_TOXIC": "content_filter",  # v1's name, kept by some deployments
    "ERROR_LIMIT": "length",
}


class CohereProvider(SDKProvider):
    sdk_module = "cohere"
    default_key_env = "CO_API_KEY"
    _http: Any = None  # the HTTP client of the SDK client built last

    def _make_client(self) -> Any:
        try:
            import cohere
        except ImportError as exc:
            raise ProviderError(
                "the cohere provider needs: pip install 'linqra-on-ray[cohere]'",
                code="provider_unavailable",
            ) from exc
        import httpx

        api_key = self.api_key()
        # our own HTTP client, so that closing the provider closes its connections (the SDK's
        # client has no close of its own)
        self._http = http = httpx.AsyncClient(timeout=self.timeout, follow_redirects=True)
        kwargs: dict[str, Any] = {
            "api_key": api_key,
            "timeout": self.timeout,
            "max_retries": 0,
            "httpx_client": http,
        }
        if self.base_url:
            kwargs["base_url"] = self.base_url
        return cohere.AsyncClientV2(**kwargs)

    async def _close_client(self, client: Any) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def model(self, name: str) -> CohereModel:
        return CohereModel(self, name)


class CohereModel:
    def __init__(self, provider: CohereProvider, name: str) -> None:
        self._provider = provider
        self.provider = provider.name
        self.name = name

    def _args(self, messages: Sequence[Message], settings: ModelSettings) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self.name,
            "messages": [_wire_message(m) for m in messages],
            "request_options": NO_RETRIES,
        }
        if settings.tools:
            args["tools"] = [tool.to_openai() for tool in settings.tools]
        if settings.tool_choice in ("required", "none"):  # Cohere has no "auto" or named choice
            args["tool_choice"] = settings.tool_choice.upper()
        if settings.temperature is not None:
            args["temperature"] = min(settings.temperature, 1.0)  # Cohere's range is 0-1
        if settings.max_tokens is not None:
            args["max_tokens"] = settings.max_tokens
        if settings.top_p is not None:
            args["p"] = settings.top_p
        if settings.stop:
            args["stop_sequences"] = list(settings.stop)
        if settings.json_mode:
            args["response_format"] = {"type": "json_object"}
        return args

    async def request(self, messages: Sequence[Message], settings: ModelSettings) -> ModelResponse:
        with translate_errors(self.provider):
            response = await self._provider.client().chat(**self._args(messages, settings))
        content = response.message.content or []
        text = "".join(getattr(part, "text", "") or "" for part in content)
        calls = tuple(
            ToolCall(c.id or f"call_{i}", c.function.name or "", c.function.arguments or "{}")
            for i, c in enumerate(response.message.tool_calls or ())
            if c.function is not None
        )
        return ModelResponse(
            text,
            self.name,
            self.provider,
            _usage(response.usage),
            _finish_reason(response.finish_reason),
            response.id or "",
            tool_calls=calls,
        )

    async def request_stream(
        self, messages: Sequence[Message], settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        parts: list[str] = []
        calls: dict[int, list[str]] = {}  # index → [id, name, arguments so far]
        usage: Usage | None = None
        finish, response_id = "stop", ""
        with translate_errors(self.provider):
            # closed with us: a consumer that stops early closes the HTTP response upstream
            events = self._provider.client().chat_stream(**self._args(messages, settings))
            async with contextlib.aclosing(events):
                async for event in events:
                    kind = getattr(event, "type", "")
                    if kind == "message-start":
                        response_id = getattr(event, "id", "") or ""
                    elif kind == "content-delta":
                        text = event.delta.message.content.text
                        if text:
                            parts.append(text)
                            yield Delta(text)
                    elif kind == "tool-call-start":
                        call = event.delta.message.tool_calls
                        function = call.function
                        calls[event.index] = [
                            call.id or f"call_{event.index}",
                            (function.name if function else "") or "",
                            (function.arguments if function else "") or "",
                        ]
                        yield ToolCallDelta(len(calls) - 1, *calls[event.index])
                    elif kind == "tool-call-delta" and event.index in calls:
                        function = event.delta.message.tool_calls.function
                        piece = (function.arguments if function else "") or ""
                        calls[event.index][2] += piece
                        yield ToolCallDelta(list(calls).index(event.index), arguments=piece)
                    elif kind == "message-end":
                        usage = _usage(event.delta.usage)
                        finish = _finish_reason(event.delta.finish_reason)
        if usage is None:
            raise ProviderError(
                f"{self.provider}: stream ended without usage", code="missing_usage"
            )
        tool_calls = tuple(ToolCall(c[0], c[1], c[2] or "{}") for _, c in sorted(calls.items()))
        yield ModelResponse(
            "".join(parts),
            self.name,
            self.provider,
            usage,
            finish,
            response_id,
            tool_calls=tool_calls,
        )


def _wire_message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
    if m.role == "assistant" and m.tool_calls:
        out: dict[str, Any] = {
            "role": "assistant",
            "tool_calls": [call.to_openai() for call in m.tool_calls],
        }
        if m.content:
            out["tool_plan"] = m.content
        return out
    return {"role": m.role, "content": m.content}


def _finish_reason(raw: object) -> str:
    return _FINISH_REASONS.get(str(raw or "COMPLETE").upper(), "stop")


def _usage(raw: Any) -> Usage:
    billed = getattr(raw, "billed_units", None) or getattr(raw, "tokens", None)
    if billed is None:
        raise ProviderError("cohere: response without usage", code="missing_usage")
    return Usage(
        input_tokens=int(billed.input_tokens or 0), output_tokens=int(billed.output_tokens or 0)
    )


@contextlib.contextmanager
def translate_errors(provider: str) -> Iterator[None]:
    import httpx
    from cohere.core.api_error import ApiError

    try:
        yield
    except ApiError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        raise status_error(
            provider,
            int(exc.status_code or 0),
            body.get("message") or exc.body,
            (exc.headers or {}).get("retry-after"),
        ) from exc
    except httpx.TimeoutException as exc:
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
