"""OpenAI-compatible routes on the gateway: ``POST /v1/chat/completions``, ``GET /v1/models``,
and ``GET /v1/usage``. Any OpenAI SDK works when pointed at ``http://HOST:8000/v1`` with the
``X-Team-Id`` header (``default_headers``); every call is accounted to that team."""

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import StreamingResponse

from linqra.clock import query_instant
from linqra.errors import LinqraError, ValidationError
from linqra.llm.service import Completion, LLMService
from linqra.llm.types import (
    MAX_OUTPUT_TOKENS,
    Delta,
    ModelResponse,
    ModelSettings,
    ToolCallDelta,
    parse_messages,
    parse_settings,
)
from linqra.steps.llm import completion_shape

__all__ = [
    "ChatRequest",
    "chat_completion",
    "chat_settings",
    "list_models",
    "set_price",
    "usage_summary",
]


def _bounds(low: float, high: float) -> Any:
    """Bounds shown in the OpenAPI schema; ``parse_settings`` enforces them (400 on body.<name>)."""
    return Field(default=None, json_schema_extra={"minimum": low, "maximum": high})


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat-completions request that Linqra uses; others are ignored.

    Every setting is bounded, and a 400 names it (``body.max_tokens``): ``temperature`` 0-2,
    ``top_p`` 0-1, ``max_tokens``/``max_completion_tokens`` 1-1,000,000, ``n`` only 1 (one
    choice is returned), ``stop`` a text or at most 16 texts of at most 1,000 characters. The
    checks are :func:`~linqra.llm.types.parse_settings`, shared with workflow LLM steps.
    """

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    temperature: float | None = _bounds(0, 2)
    max_tokens: int | None = _bounds(1, MAX_OUTPUT_TOKENS)
    max_completion_tokens: int | None = _bounds(1, MAX_OUTPUT_TOKENS)
    top_p: float | None = _bounds(0, 1)
    n: int | None = _bounds(1, 1)
    stop: str | list[str] | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None


def chat_settings(request: ChatRequest) -> ModelSettings:
    """The request's model settings, checked as a workflow step's are (400 on ``body.<name>``)."""
    if request.n not in (None, 1):
        raise ValidationError("n must be 1: one choice is returned", field="body.n")
    raw = {
        k: v
        for k, v in (
            ("temperature", request.temperature),
            ("max_tokens", request.max_tokens),
            ("max_completion_tokens", request.max_completion_tokens),
            ("top_p", request.top_p),
            ("stop", request.stop),
            ("tools", request.tools),
            ("tool_choice", request.tool_choice),
        )
        if v is not None
    }
    if (request.response_format or {}).get("type") == "json_object":
        raw["json_mode"] = True
    return parse_settings(raw, "body")


async def chat_completion(llm: LLMService, team_id: str, request: ChatRequest) -> Any:
    messages = parse_messages(request.messages, "messages")
    settings = chat_settings(request)
    caller = {"type": "api", "endpoint": "/v1/chat/completions"}
    model_ref = _model_ref(llm, request.model)
    if not request.stream:
        done = await llm.complete(team_id, model_ref, messages, settings, caller=caller)
        return _with_linqra(completion_shape(done.response), done)
    include_usage = bool((request.stream_options or {}).get("include_usage"))
    events = llm.stream(team_id, model_ref, messages, settings, caller=caller)
    first = await anext(
        events
    )  # resolve the model and open the upstream stream before answering 200
    return StreamingResponse(
        _sse(first, events, include_usage),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


def _model_ref(llm: LLMService, model: str) -> str:
    """``provider:model``, an alias, or a bare catalogue name (``gpt-4o``) when one provider has it."""
    if ":" in model or model in llm.settings.llm.aliases or model in llm.settings.llm.routes:
        return model
    owners = [key for key in llm.catalogue.prices if key.split(":", 1)[1] == model]
    if len(owners) == 1:
        return owners[0]
    known = ", ".join(sorted(llm.settings.llm.providers))
    raise ValidationError(
        f"model {model!r}: write provider:model (providers: {known})", field="model"
    )


async def _sse(first: Any, events: AsyncIterator[Any], include_usage: bool) -> AsyncIterator[bytes]:
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    model = ""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        body = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(body, separators=(',', ':'))}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""})
    pending: list[Any] = [first]
    streamed_calls = False
    try:
        while True:
            event = pending.pop() if pending else await anext(events)
            if isinstance(event, Delta):
                yield chunk({"content": event.text})
            elif isinstance(event, ToolCallDelta):
                streamed_calls = True
                yield chunk({"tool_calls": [event.to_openai()]})
            elif isinstance(event, ModelResponse):
                model = event.model
                if event.tool_calls and not streamed_calls:
                    calls = [
                        {"index": i, **call.to_openai()} for i, call in enumerate(event.tool_calls)
                    ]
                    yield chunk({"tool_calls": calls})
                yield chunk({}, "tool_calls" if event.tool_calls else event.finish_reason)
            elif isinstance(event, Completion):
                if include_usage:
                    body = {
                        "id": chunk_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": event.response.usage.to_openai(),
                        "linqra": _linqra(event),
                    }
                    yield f"data: {json.dumps(body, separators=(',', ':'))}\n\n".encode()
                break
    except StopAsyncIteration:
        pass
    except LinqraError as exc:  # after the first byte the status is sent: report in the stream
        yield f"data: {json.dumps({'error': exc.to_dict()})}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _linqra(done: Completion) -> dict[str, Any]:
    out: dict[str, Any] = {
        "provider": done.response.provider,
        "requested_model": done.resolved.requested,
        "cost": done.cost.to_json() if done.cost else None,
        "usage_record": done.record["id"],
    }
    if done.resolved.fallback_reason:
        out["fallback"] = {"provider": "local", "reason": done.resolved.fallback_reason}
    return out


def _with_linqra(body: dict[str, Any], done: Completion) -> dict[str, Any]:
    body["linqra"] = _linqra(done)
    return body


async def list_models(llm: LLMService, team_id: str) -> dict[str, Any]:
    """The catalogue at the team's prices (its overrides marked), plus models only it prices."""
    overrides = await llm.overrides.list(team_id)
    effective = {key: (price, llm.catalogue.version) for key, price in llm.catalogue.prices.items()}
    effective.update(overrides)
    data = []
    for key, (price, version) in sorted(effective.items()):
        provider = key.split(":", 1)[0]
        data.append(
            {
                "id": key,
                "object": "model",
                "created": 0,
                "owned_by": provider,
                "linqra": {
                    **price.to_json(),
                    "configured": provider in llm.settings.llm.providers,
                    "price_version": version,
                    "override": key in overrides,
                },
            }
        )
    return {"object": "list", "data": data}


async def set_price(llm: LLMService, team_id: str, model_id: str, body: dict[str, Any]) -> Any:
    provider = model_id.split(":", 1)[0]
    if provider not in llm.settings.llm.providers and provider not in _catalogue_providers(llm):
        known = ", ".join(sorted(set(llm.settings.llm.providers) | _catalogue_providers(llm)))
        raise ValidationError(f"unknown provider {provider!r} (known: {known})", field="model")
    return await llm.overrides.set(team_id, model_id, body)


def _catalogue_providers(llm: LLMService) -> set[str]:
    return {key.split(":", 1)[0] for key in llm.catalogue.prices}


async def usage_summary(
    llm: LLMService, team_id: str, group_by: str, start: str | None, end: str | None
) -> dict[str, Any]:
    begin, finish = query_instant(start, "from"), query_instant(end, "to")
    if begin and finish and finish <= begin:
        raise ValidationError("to must be after from", field="to")
    items = await llm.usage.summary(team_id, group_by=group_by, start=begin, end=finish)
    return {"group_by": group_by, "from": start, "to": end, "items": items}
