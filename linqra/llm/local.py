"""The ``local`` provider: deterministic, offline, clearly labelled.

It answers without a network or a key, so ``make run``, the examples and the tests work
anywhere. It is not a language model: it quotes. Given context (a system message, or text after
``Context:``/``Examples:`` in the prompt) it answers with the sentences of the context that share
the most words with the question; otherwise it says what it was asked. Every answer starts with
``[local model]`` so nobody mistakes it for a real one. Usage is counted with a simple word/
punctuation tokenizer and marked ``estimated``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Sequence

from linqra.llm.base import StreamEvent
from linqra.llm.types import Delta, Message, ModelResponse, ModelSettings, Usage

__all__ = ["LocalModel", "LocalProvider", "count_tokens"]

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"[a-z0-9]{3,}")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_CONTEXT_MARK = re.compile(r"(?is)\b(?:context|examples?|documents?)\s*:\s*")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


class LocalModel:
    provider = "local"

    def __init__(self, name: str = "local", *, delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay

    def answer(self, messages: Sequence[Message], settings: ModelSettings) -> str:
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        context = " ".join(m.content for m in messages if m.role == "system")
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
            tokens = _TOKEN.findall(text)
            if len(tokens) > settings.max_tokens:
                text = " ".join(tokens[: settings.max_tokens])
        return text

    def _response(self, messages: Sequence[Message], text: str) -> ModelResponse:
        prompt = sum(count_tokens(m.content) + 4 for m in messages)
        usage = Usage(input_tokens=prompt, output_tokens=count_tokens(text), estimated=True)
        return ModelResponse(text, self.name, "local", usage, labels={"local": True})

    async def request(self, messages: Sequence[Message], settings: ModelSettings) -> ModelResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._response(messages, self.answer(messages, settings))

    async def request_stream(
        self, messages: Sequence[Message], settings: ModelSettings
    ) -> AsyncIterator[StreamEvent]:
        text = self.answer(messages, settings)
        for piece in re.findall(r"\S+\s*", text):
            if self.delay:
                await asyncio.sleep(self.delay)
            else:
                await asyncio.sleep(0)
            yield Delta(piece)
        yield self._response(messages, text)


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
