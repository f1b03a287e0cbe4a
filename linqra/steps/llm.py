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
from linqra.llm.registry import TARGET_PROVIDERS, LLMRegistry
from linqra.llm.service import Completion
from linqra.llm.types import ModelResponse, parse_messages, parse_settings
from linqra.steps.base import ExecutorKind, StepCall, StepContext

if TYPE_CHECKING:
    from linqra.workflows.definition import Step

__all__ = ["LLM_TARGETS", "LLMTarget", "completion_shape"]

LLM_TARGETS = tuple(TARGET_PROVIDERS)


class LLMTarget:
    kind: ExecutorKind = "io"
    url_intent = False
    pure = False

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
        service = ctx.system.llm
        config = dict(call.llm_config or {})
        caller = {
            "type": "step",
            "execution_id": call.execution_id,
            "step": call.step,
            "executed_by": call.executed_by,  # a widget key's own spend cap applies (budgets)
        }
        try:
            messages = parse_messages(call.payload)
            settings = parse_settings(config.get("settings"))
            if call.stream:
                done = None
                async for event in service.stream(
                    call.team_id,
                    config.get("model"),
                    messages,
                    settings,
                    caller=caller,
                    target=self.name,
                ):
                    if isinstance(event, Completion):
                        done = event
                if done is None:
                    raise ProviderError("stream ended without a response")
            else:
                done = await service.complete(
                    call.team_id,
                    config.get("model"),
                    messages,
                    settings,
                    caller=caller,
                    target=self.name,
                )
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
        result = completion_shape(done.response)
        result["latency_ms"] = done.latency_ms
        result["requested_model"] = done.resolved.requested
        result["cost"] = done.cost.to_json() if done.cost else None
        if done.resolved.fallback_reason:
            result["fallback"] = {"provider": "local", "reason": done.resolved.fallback_reason}
        return result


def completion_shape(response: ModelResponse) -> dict[str, Any]:
    """An OpenAI chat-completion object for any provider's response, plus ``text`` and ``provider``."""
    message: dict[str, Any] = {"role": "assistant", "content": response.text}
    if response.tool_calls:
        message["content"] = response.text or None
        message["tool_calls"] = [call.to_openai() for call in response.tool_calls]
    return {
        "id": response.response_id or f"linqra-{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.model,
        "provider": response.provider,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if response.tool_calls else response.finish_reason,
            }
        ],
        "usage": {**response.usage.to_openai(), "estimated": response.usage.estimated},
        "text": response.text,
    }
