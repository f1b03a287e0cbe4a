"""Token counting with a real BPE tokenizer (OpenAI's ``o200k_base``, bundled: no download).

The ``local`` provider reports its usage with it, and budgets count prompts with it before a
call. Other providers' own usage objects are always what is billed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from linqra.llm.types import Message, ToolDefinition

__all__ = ["ENCODING", "count_prompt", "count_tokens"]

ENCODING = "o200k_base"
_PER_MESSAGE = 3  # OpenAI's chat format: <|start|>role ... <|end|>
_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>


@functools.cache
def _encoding() -> Any:
    import bpe_openai

    return bpe_openai.get_encoding(ENCODING)


def count_tokens(text: str) -> int:
    return len(_encoding().encode(text)) if text else 0


def count_prompt(messages: Sequence[Message], tools: Sequence[ToolDefinition] = ()) -> int:
    """Prompt tokens as OpenAI's chat format counts them (messages, tool calls, tool schemas)."""
    total = _PRIMING
    for m in messages:
        total += _PER_MESSAGE + count_tokens(m.content) + count_tokens(m.role)
        if m.name:
            total += 1 + count_tokens(m.name)
        for call in m.tool_calls:
            total += _PER_MESSAGE + count_tokens(call.name) + count_tokens(call.arguments)
    if tools:
        total += count_tokens(json.dumps([t.to_openai() for t in tools], separators=(",", ":")))
    return total
