"""OpenAI-compatible routes on the gateway: ``POST /v1/chat/completions``, ``GET /v1/models``,
and ``GET /v1/usage``. Any OpenAI SDK works when pointed at ``http://HOST:8000/v1`` with the
``X-Team-Id`` header (``default_headers``); every call is accounted to that team.

``model: "assistant:<id>"`` talks to an assistant instead of a model (:func:`assistant_completion`):
the last message is the user's message in the assistant's conversation, which holds the history.
"""

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, StreamingResponse

from linqra.assistants.chat import ChatService
from linqra.assistants.turn import TERMINAL_EVENTS
from linqra.clock import query_instant
from linqra.errors import LinqraError, ValidationError
from linqra.linq import fields_renamed
from linqra.llm.service import Completion, LLMService
from linqra.llm.types import (
    MAX_OUTPUT_TOKENS,
    Delta,
    ModelResponse,
    ModelSettings,
    ToolCallDelta,
    Usage,
    parse_messages,
    parse_settings,
)
from linqra.steps.llm import completion_shape

__all__ = [
    "ASSISTANT_MODEL",
    "CONVERSATION_HEADER",
    "ChatRequest",
    "assistant_completion",
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
    metadata: dict[str, Any] | None = Field(
        default=None, description="with an assistant: conversation_id continues a conversation"
    )
    user: str | None = Field(default=None, max_length=256, description="your end user's id")


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
    answering: list[str] = []
    events = llm.stream(
        team_id, model_ref, messages, settings, caller=caller,
        on_resolved=lambda resolved: answering.append(resolved.model.name),
    )  # fmt: skip
    first = await anext(
        events
    )  # resolve the model and open the upstream stream before answering 200
    return StreamingResponse(
        _sse(first, events, include_usage, answering[0] if answering else ""),
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


async def _sse(
    first: Any, events: AsyncIterator[Any], include_usage: bool, model: str
) -> AsyncIterator[bytes]:
    """OpenAI's chunks; each names ``model`` (the model that answers), then from the final
    response on the name the provider gave (a dated one, e.g. ``gpt-4o-2024-08-06``)."""
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

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


# -- assistants ---------------------------------------------------------------------------------
ASSISTANT_MODEL = "assistant:"
CONVERSATION_HEADER = "X-Linqra-Conversation-Id"


async def assistant_completion(
    chat: ChatService,
    team_id: str,
    request: ChatRequest,
    *,
    conversation_id: str | None = None,
    executed_by: str | None = None,
) -> Any:
    """``model: "assistant:<id>"``: the last message, the user's, is sent to the assistant (in
    the conversation ``conversation_id`` names — the ``X-Linqra-Conversation-Id`` header or
    ``metadata.conversation_id`` — else in a new one); earlier messages are not used, the
    conversation holds the history. The answer is OpenAI's completion or its chunks (the
    assistant's own model settings apply; ``tools`` are refused: an assistant calls its own
    tasks), with the conversation's id in the ``X-Linqra-Conversation-Id`` header and in
    ``linqra``. A stream whose client goes away follows the assistant's ``onDisconnect``."""
    index, text = _user_message(request.messages)
    chat_settings(request)  # bounded as for a model, so a bad value is a 400 here too
    for name in ("tools", "tool_choice"):
        if getattr(request, name) is not None:
            raise ValidationError(
                f"{name} cannot be given to an assistant: it calls its own tasks",
                field=f"body.{name}",
            )
    conversation_id, where = _conversation(request, conversation_id)
    assistant_id = request.model.removeprefix(ASSISTANT_MODEL)
    names = {
        "message": f"messages[{index}].content",
        "conversationId": where,
        "conversation_id": where,
        "assistant_id": "model",
        "status": "model",  # a DRAFT or INACTIVE assistant's 409
    }
    with fields_renamed(names):
        if not assistant_id:
            raise ValidationError("write assistant:<assistant id>", field="assistant_id")
        parsed = chat.parse({"message": text, "conversationId": conversation_id})
        started = await chat.send(
            team_id, parsed, assistant_id=assistant_id, executed_by=executed_by
        )
    info = {
        "conversation_id": started["conversation_id"],
        "run_id": started["run"]["id"],
        "assistant_id": started["assistant_id"],
        "ignored_messages": index,
    }
    headers = {CONVERSATION_HEADER: started["conversation_id"]}
    if request.stream:
        include_usage = bool((request.stream_options or {}).get("include_usage"))
        events = _assistant_sse(
            chat, team_id, request.model, info, started["on_disconnect"], include_usage
        )
        return StreamingResponse(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers},
        )
    reply = await chat.reply(team_id, info["run_id"])
    if reply["status"] == "failed":
        raise _run_error(reply.get("error"))
    body = {
        "id": f"chatcmpl-{info['run_id']}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply["content"]},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(reply).to_openai(),
        "linqra": _assistant_info(info, reply),
    }
    return JSONResponse(body, headers=headers)


def _user_message(messages: list[dict[str, Any]]) -> tuple[int, str]:
    """The last message's index and text; it must be the user's (the one to answer)."""
    index = len(messages) - 1
    last = messages[index]
    if last.get("role") != "user":
        raise ValidationError(
            "the last message must be the user's: the assistant answers it",
            field=f"messages[{index}].role",
        )
    content = last.get("content")
    if isinstance(content, list):  # content parts: the text ones, in order
        if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
            raise ValidationError(
                "an assistant takes text parts only", field=f"messages[{index}].content"
            )
        content = "".join(str(p.get("text") or "") for p in content)
    if not isinstance(content, str):
        raise ValidationError("content must be text", field=f"messages[{index}].content")
    return index, content


def _conversation(request: ChatRequest, header: str | None) -> tuple[str | None, str]:
    """The conversation to continue (None: a new one) and the name of where it was given."""
    given = (request.metadata or {}).get("conversation_id")
    if given is not None and not isinstance(given, str):
        raise ValidationError("conversation_id must be text", field="metadata.conversation_id")
    if header and given and header != given:
        raise ValidationError(
            f"metadata.conversation_id differs from the {CONVERSATION_HEADER} header",
            field="metadata.conversation_id",
        )
    if header:
        return header, CONVERSATION_HEADER
    return given or None, "metadata.conversation_id"


async def _assistant_sse(
    chat: ChatService,
    team_id: str,
    model: str,
    info: dict[str, Any],
    on_disconnect: str | None,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """The run's events as OpenAI chunks. A guardrail rewriting text already sent
    (``message.replace``) cannot be taken back in this protocol: it ends the choice with
    ``finish_reason: content_filter`` and the text as it now reads in ``linqra.replace``."""
    run_id, created = info["run_id"], int(time.time())

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        base = {"id": f"chatcmpl-{run_id}", "object": "chat.completion.chunk", "created": created}
        return _data({**base, "model": model, "choices": choices, **extra})

    yield chunk({"role": "assistant", "content": ""}, linqra=info)
    finished = filtered = False
    try:
        async for event in chat.events(team_id, run_id):
            if event is None:
                yield b": keep-alive\n\n"
            elif event.event == "message.delta" and not filtered:
                yield chunk({"content": event.data["text"]})
            elif event.event == "message.replace" and not filtered:
                filtered = True
                yield chunk({}, "content_filter", linqra={"replace": event.data["text"]})
            elif event.event in TERMINAL_EVENTS:
                finished = True
                if event.event == "run.failed":
                    yield _data({"error": _run_error(event.data.get("error")).to_dict()})
                    break
                if not filtered:
                    yield chunk({}, "stop")
                if include_usage:
                    usage = _usage(event.data).to_openai()
                    yield chunk(None, usage=usage, linqra=_assistant_info(info, event.data))
    except LinqraError as exc:  # the run log's store went away mid-stream: say so
        yield _data({"error": exc.to_dict()})
    finally:
        if not finished and on_disconnect == "cancel":  # the client went away
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                await chat.cancel(team_id, info["conversation_id"], run_id)
    yield b"data: [DONE]\n\n"


def _data(body: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(body, separators=(',', ':'), default=str)}\n\n".encode()


def _usage(reply: Mapping[str, Any]) -> Usage:
    usage = reply.get("usage") or {}

    def count(kind: str) -> int:
        return int(usage.get(kind) or 0)

    return Usage(
        input_tokens=count("input_tokens"),
        cache_read_tokens=count("cache_read_tokens"),
        cache_write_tokens=count("cache_write_tokens"),
        output_tokens=count("output_tokens"),
        reasoning_tokens=count("reasoning_tokens"),
    )


def _assistant_info(info: Mapping[str, Any], reply: Mapping[str, Any]) -> dict[str, Any]:
    cost = reply.get("cost")
    return {
        **info,
        "status": reply.get("status"),
        "message_id": reply.get("message_id"),
        "model": reply.get("model"),
        "cost": {"amount": cost, "currency": reply.get("currency")} if cost else None,
        "citations": reply.get("citations") or [],
        "task_results": reply.get("task_results") or [],
    }


def _run_error(error: Mapping[str, Any] | None) -> LinqraError:
    """A failed run's ``{code, message}`` as the error whose code it is (its HTTP status)."""
    code = str((error or {}).get("code") or "internal")
    message = str((error or {}).get("message") or "the reply failed")
    kinds = [LinqraError]
    while kinds:
        kind = kinds.pop()
        if kind.code == code:
            return kind(message)
        kinds.extend(kind.__subclasses__())
    err = LinqraError(message)
    err.code = code
    return err


async def list_models(llm: LLMService, team_id: str) -> dict[str, Any]:
    """The catalogue at the team's prices (its overrides marked), plus models only it prices;
    ``local_fallback``: a call now would be answered by the local model
    (:meth:`~linqra.llm.service.LLMService.answered_locally`)."""
    overrides = await llm.overrides.list(team_id)
    effective = {key: (price, llm.catalogue.version) for key, price in llm.catalogue.prices.items()}
    effective.update(overrides)
    local = await llm.answered_locally(team_id, sorted({k.split(":", 1)[0] for k in effective}))
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
                    "local_fallback": provider in local,
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
