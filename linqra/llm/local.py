"""The ``local`` provider: deterministic, offline, clearly labelled.

It answers without a network or a key, so ``make run``, the examples and the tests work
anywhere. It is not a language model: it quotes. Given context (a system message, or text after
``Context:``/``Examples:`` in the prompt) it answers with the sentences of the context that share
the most words with the question; otherwise it says what it was asked. Every answer starts with
``[local model]`` so nobody mistakes it for a real one. Usage is counted with a real BPE
tokenizer (``o200k_base``, see :mod:`linqra.llm.tokens`).

Tools: offered tools, it calls one when ``tool_choice`` names it or is ``required`` (the first
tool), or when the question contains a tool's name (``get_weather`` matches "get weather");
its arguments fill the schema's required string properties with the question. Once tool results
are in the conversation, it answers by quoting them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Sequence

from linqra.llm.base import StreamEvent
from linqra.llm.tokens import _encoding, count_prompt, count_tokens
from linqra.llm.types import (
    Delta,
    Message,
    ModelResponse,
    ModelSettings,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = ["LocalModel", "LocalProvider"]

_WORD = re.compile(r"[a-z0-9]{3,}")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_CONTEXT_MARK = re.compile(r"(?is)\b(?:context|examples?|documents?)\s*:\s*")


class LocalModel:
    provider = "local"

    def __init__(self, name: str = "local", *, delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay

    def tool_calls(
        self, messages: Sequence[Message], settings: ModelSettings
    ) -> tuple[ToolCall, ...]:
        if not settings.tools or settings.tool_choice == "none" or not messages:
            return ()
        if messages[-1].role != "user":  # tool results are in: answer from them
            return ()
        question = messages[-1].content
        by_name = {t.name: t for t in settings.tools}
        tool = by_name.get(settings.tool_choice or "")
        if tool is None and settings.tool_choice == "required":
            tool = settings.tools[0]
        if tool is None:
            words = set(_WORD.findall(question.lower()))
            tool = next(
                (
                    t
                    for t in settings.tools
                    if set(_WORD.findall(t.name.lower().replace("_", " "))) <= words
                ),
                None,
            )
        if tool is None:
            return ()
        required = tool.parameters.get("required") or []
        properties = tool.parameters.get("properties") or {}
        arguments = {
            key: question.strip()
            for key in required
            if (properties.get(key) or {}).get("type", "string") == "string"
        }
        digest = hashlib.sha256(f"{tool.name}{question}".encode()).hexdigest()[:12]
        return (ToolCall(f"call_local_{digest}", tool.name, json.dumps(arguments)),)

    def answer(self, messages: Sequence[Message], settings: ModelSettings) -> str:
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        context = " ".join(m.content for m in messages if m.role in ("system", "tool"))
        parts = _CONTEXT_MARK.split(question, maxsplit=1)
        if len(parts) == 2:
            context, question = f"{context} {parts[1]}", parts[0] or parts[1]
        quoted = _best_sentences(context, question)
        if quoted:
            text = f"[local model] From the context: {quoted}"
        else:
            digest = hashlib.sha256(question.encode()).hexdigest()[:8]
            text = f"[local model] You asked: {question.strip()[:400]} (no context given; answer {digest})"
        if settings.max_tokens is not None:
            tokens = _encoding().encode(text)
            if len(tokens) > settings.max_tokens:
                text = _encoding().decode(tokens[: settings.max_tokens])
        return text

    def _response(
        self,
        messages: Sequence[Message],
        settings: ModelSettings,
        text: str,
        calls: tuple[ToolCall, ...] = (),
    ) -> ModelResponse:
        output = count_tokens(text) + sum(
            count_tokens(c.name) + count_tokens(c.arguments) for c in calls
        )
        usage = Usage(input_tokens=count_prompt(messages, settings.tools), output_tokens=output)
        return ModelResponse(
            text,
            self.name,
            "local",
            usage,
            "tool_calls" if calls else "stop",
            labels={"local": True},
            tool_calls=calls,
        )

    async def request(self, messages: Sequence[Message], settings: ModelSettings) -> ModelResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        calls = self.tool_calls(messages, settings)
        text = "" if calls else self.answer(messages, settings)
        return self._response(messages, settings, text, calls)

    async def request_stream(
        self, messages: Sequence[Message], settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        calls = self.tool_calls(messages, settings)
        text = "" if calls else self.answer(messages, settings)
        encoding, pending = _encoding(), b""
        for token in encoding.encode(text):  # token by token, as a real model streams
            pending += encoding.decode_single_token_bytes(token)
            try:
                piece = pending.decode()
            except UnicodeDecodeError:  # a character split across tokens: wait for the rest
                continue
            pending = b""
            await asyncio.sleep(self.delay)
            yield Delta(piece)
        for i, call in enumerate(calls):
            yield ToolCallDelta(i, call.id, call.name, call.arguments)
        yield self._response(messages, settings, text, calls)


class LocalProvider:
    name = "local"

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay

    def model(self, name: str) -> LocalModel:
        return LocalModel(name or "local", delay=self.delay)

    async def aclose(self) -> None:
        return None


def _best_sentences(context: str, question: str, limit: int = 2) -> str:
    words = set(_WORD.findall(question.lower()))
    sentences = [s.strip() for s in _SENTENCE.split(context) if len(s.strip()) > 3]
    if not sentences or not words:
        return ""
    scored = sorted(
        ((len(words & set(_WORD.findall(s.lower()))), -i, s) for i, s in enumerate(sentences)),
        reverse=True,
    )
    best = [s for score, _, s in scored[:limit] if score > 0]
    return " ".join(best)
