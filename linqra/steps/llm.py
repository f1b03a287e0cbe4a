"""LLM steps: Linqra's ``openai``, ``openai-chat``, ``gemini``, ``anthropic``/``claude``, ``cohere``,
``ollama-chat`` targets and our ``llm`` target, one implementation.

::

    {"step": 3, "target": "openai", "action": "generate", "intent": "generate",
     "payload": [{"role": "user", "content": "One saying by {{step1.result.fullName}}"}],
     "llmConfig": {"model": "gpt-4o", "settings": {"temperature": 0.7, "max_tokens": 200}}}

The result has the OpenAI chat-completion shape whatever the provider
(``choices[0].message.content``, ``usage``), plus ``text``, ``provider``, ``cost`` (exact, as
text, with the catalogue version) and ``fallback`` when the local provider answered instead.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from linqra.config import LLMSettings
from linqra.errors import ProviderError, StepError, ValidationError
from linqra.llm.pricing import load_catalogue
from linqra.llm.registry import TARGET_PROVIDERS, LLMRegistry
from linqra.llm.types import Delta, ModelResponse, parse_messages, parse_settings
from linqra.steps.base import ExecutorKind, StepCall, StepContext

if TYPE_CHECKING:
    from linqra.workflows.definition import Step

__all__ = ["LLM_TARGETS", "LLMTarget", "completion_shape"]

LLM_TARGETS = tuple(TARGET_PROVIDERS)


class LLMTarget:
    kind: ExecutorKind = "io"
    url_intent = False

    def __init__(self, name: str, settings: LLMSettings) -> None:
        self.name = name
        self.settings = settings

    def validate(self, step: Step, field: str) -> None:
        if step.action not in (None, "generate", "chat", "execute"):
            raise ValidationError(
                "action must be 'generate' for an LLM step", field=f"{field}.action"
            )
        if not (isinstance(step.payload, str) and step.payload.strip().startswith("{{")):
            parse_messages(step.payload, f"{field}.payload")  # templates inside contents are text
        config = step.llmConfig or {}
        unknown = set(config) - {"model", "settings"}
        if unknown:
            raise ValidationError(
                f"unknown llmConfig field {sorted(unknown)[0]!r}", field=f"{field}.llmConfig"
            )
        model = config.get("model")
        if model is not None and not isinstance(model, str):
            raise ValidationError("llmConfig.model must be text", field=f"{field}.llmConfig.model")
        if model is None or "{{" not in model:
            LLMRegistry(self.settings).parse(model, self.name, f"{field}.llmConfig.model")
        parse_settings(config.get("settings"), f"{field}.llmConfig.settings")

    async def run(self, call: StepCall, ctx: StepContext) -> Any:
        registry: LLMRegistry = ctx.resource("llm.registry", lambda: LLMRegistry(ctx.settings.llm))
        config = dict(call.llm_config or {})
        try:
            messages = parse_messages(call.payload)
            settings = parse_settings(config.get("settings"))
            resolved = registry.resolve(config.get("model"), self.name)
            t0 = time.perf_counter()
            if call.stream:
                response = None
                async for event in resolved.model.request_stream(messages, settings):
                    if isinstance(event, ModelResponse):
                        response = event
                    elif not isinstance(
                        event, Delta
                    ):  # pragma: no cover - the port yields only these
                        raise ProviderError("unexpected stream event")
                if response is None:
                    raise ProviderError(f"{resolved.requested}: stream ended without a response")
            else:
                response = await resolved.model.request(messages, settings)
            latency_ms = round((time.perf_counter() - t0) * 1000, 3)
        except ValidationError as exc:
            raise StepError(
                exc.message, field=exc.field, non_retryable=True, code=exc.code
            ) from exc
        except ProviderError as exc:
            raise StepError(
                exc.message,
                non_retryable=not exc.retryable,
                next_retry_delay=exc.retry_after,
                code=exc.code,
            ) from exc
        catalogue = load_catalogue(ctx.settings.llm.catalogue)
        asked_provider, asked_model = resolved.requested.split(":", 1)
        cost = catalogue.cost(response.provider, response.model, response.usage)
        if (
            cost is None and not resolved.fallback_reason
        ):  # the provider may answer with a dated model name
            cost = catalogue.cost(asked_provider, asked_model, response.usage)
        result = completion_shape(response)
        result["latency_ms"] = latency_ms
        result["requested_model"] = resolved.requested
        result["cost"] = cost.to_json() if cost else None
        if resolved.fallback_reason:
            result["fallback"] = {"provider": "local", "reason": resolved.fallback_reason}
        return result


def completion_shape(response: ModelResponse) -> dict[str, Any]:
    """An OpenAI chat-completion object for any provider's response, plus ``text`` and ``provider``."""
    return {
        "id": response.response_id or f"linqra-{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.model,
        "provider": response.provider,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": response.text},
                "finish_reason": response.finish_reason,
            }
        ],
        "usage": {**response.usage.to_openai(), "estimated": response.usage.estimated},
        "text": response.text,
    }
