"""Cohere's v2 Chat wire format, on the official ``cohere`` SDK (optional extra: ``[cohere]``).

Usage is taken from ``usage.billed_units`` (what Cohere bills); streams report it in the
``message-end`` event. SDK retries are off (``request_options.max_retries = 0``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from linqra.errors import ProviderError
from linqra.llm._sdk import SDKProvider
from linqra.llm.base import StreamEvent
from linqra.llm.types import Delta, Message, ModelResponse, ModelSettings, Usage
from linqra.resilience import parse_retry_after

__all__ = ["CohereModel", "CohereProvider"]

_NO_RETRIES: dict[str, Any] = {"max_retries": 0}


class CohereProvider(SDKProvider):
    default_key_env = "CO_API_KEY"

    def _make_client(self) -> Any:
        try:
            import cohere
        except ImportError as exc:
            raise ProviderError(
                "the cohere provider needs: pip install 'linqra-on-ray[cohere]'",
                code="provider_unavailable",
            ) from exc
        kwargs: dict[str, Any] = {"api_key": self.api_key(), "timeout": self.timeout}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        return cohere.AsyncClientV2(**kwargs)

    async def _close_client(self, client: Any) -> None:
        return None  # the SDK's httpx client has no async close of its own here

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
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "request_options": _NO_RETRIES,
        }
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
        with _translate(self.provider):
            response = await self._provider.client().chat(**self._args(messages, settings))
        content = response.message.content or []
        text = "".join(getattr(part, "text", "") or "" for part in content)
        return ModelResponse(
            text,
            self.name,
            self.provider,
            _usage(response.usage),
            str(response.finish_reason or "COMPLETE").lower(),
            response.id or "",
        )

    async def request_stream(
        self, messages: Sequence[Message], settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        parts: list[str] = []
        usage: Usage | None = None
        finish, response_id = "complete", ""
        with _translate(self.provider):
            async for event in self._provider.client().chat_stream(
                **self._args(messages, settings)
            ):
                kind = getattr(event, "type", "")
                if kind == "message-start":
                    response_id = getattr(event, "id", "") or ""
                elif kind == "content-delta":
                    text = event.delta.message.content.text
                    if text:
                        parts.append(text)
                        yield Delta(text)
                elif kind == "message-end":
                    usage = _usage(event.delta.usage)
                    finish = str(event.delta.finish_reason or "COMPLETE").lower()
        if usage is None:
            raise ProviderError(
                f"{self.provider}: stream ended without usage", code="missing_usage"
            )
        yield ModelResponse("".join(parts), self.name, self.provider, usage, finish, response_id)


def _usage(raw: Any) -> Usage:
    billed = getattr(raw, "billed_units", None) or getattr(raw, "tokens", None)
    if billed is None:
        raise ProviderError("cohere: response without usage", code="missing_usage")
    return Usage(
        input_tokens=int(billed.input_tokens or 0), output_tokens=int(billed.output_tokens or 0)
    )


@contextlib.contextmanager
def _translate(provider: str) -> Iterator[None]:
    from cohere.core.api_error import ApiError

    try:
        yield
    except ApiError as exc:
        status = int(exc.status_code or 0)
        raw = (exc.headers or {}).get("retry-after")
        retry_after = parse_retry_after(raw)
        body = exc.body if isinstance(exc.body, dict) else {}
        raise ProviderError(
            f"{provider}: HTTP {status}: {body.get('message') or exc.body}",
            retryable=status in (408, 429) or status >= 500,
            retry_after=retry_after,
            upstream_status=status or None,
            code="provider_rate_limited" if status == 429 else "provider_error",
        ) from exc
    except (ValueError, KeyError) as exc:
        raise ProviderError(
            f"{provider}: malformed response: {exc}", code="provider_error"
        ) from exc
    except OSError as exc:
        raise ProviderError(
            f"{provider}: cannot connect: {exc}", retryable=True, code="provider_unreachable"
        ) from exc
