"""The prompt of one chat turn: the assistant's system prompt, what its tasks found and what its
knowledge collections returned (numbered, so the answer can cite ``[1]``), the recent history that
fits, and the user's message.

The history window, counted with the real tokenizer (:func:`linqra.llm.tokens.count_prompt`):

* at most ``max_recent_messages`` of the most recent messages;
* then the oldest are dropped until the whole prompt fits ``max_total_tokens`` and the model's
  context window less the reply's allowance (``max_output_tokens``);
* an assistant message that called tools and the ``tool`` messages answering it are one unit,
  kept or dropped together (a provider refuses a tool result whose call is missing);
* the system message and the user's message are never dropped: when they alone do not fit, the
  turn is refused (400 naming ``message``) before the provider is asked.

Snippets past what fits are dropped from the end (lowest ranked first) and reported, so the
citations a reply carries are exactly the snippets its prompt held.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from linqra.errors import ValidationError
from linqra.llm.tokens import count_prompt
from linqra.llm.types import Message

__all__ = ["Prompt", "build_prompt", "check_fits", "citations", "context_block", "prompt_budget"]

_PRIMING = count_prompt([])  # what every prompt costs before its messages
_SNIPPET_CHARS = 2_000  # one retrieved chunk as the prompt quotes it
_TASK_CHARS = 4_000  # one task's answer as the prompt quotes it


@dataclass(frozen=True, slots=True)
class Prompt:
    """What is sent, and what was left out to make it fit."""

    messages: list[Message]
    tokens: int
    snippets: list[Mapping[str, Any]] = field(default_factory=list)  # the ones the prompt holds
    history_used: int = 0
    history_dropped: int = 0
    snippets_dropped: int = 0


def context_block(
    task_results: Sequence[Mapping[str, Any]], snippets: Sequence[Mapping[str, Any]]
) -> str:
    """The grounding text added to the system prompt: task answers, then numbered snippets."""
    parts: list[str] = []
    answered = [t for t in task_results if t.get("status") == "completed" and t.get("answer")]
    if answered:
        lines = [
            f"- {t.get('name') or t.get('task_id')}: {_clip(str(t['answer']), _TASK_CHARS)}"
            for t in answered
        ]
        parts.append("Task results:\n" + "\n".join(lines))
    if snippets:
        lines = []
        for n, s in enumerate(snippets, 1):
            where = s.get("title") or s.get("file_name") or s.get("document_id") or "document"
            pages = s.get("page_numbers")
            if pages:
                where += f" (p. {', '.join(str(p) for p in pages)})"
            lines.append(f"[{n}] {where}: {_clip(str(s.get('text') or ''), _SNIPPET_CHARS)}")
        parts.append(
            "Answer from the context below and cite it by number, like [1].\nContext:\n"
            + "\n".join(lines)
        )
    return "\n\n".join(parts)


def prompt_budget(
    max_total_tokens: int, context_window: int | None = None, max_output_tokens: int = 0
) -> int:
    """The tokens a prompt may use: ``max_total_tokens``, and no more than the model's context
    window less the reply's allowance."""
    if context_window:
        return min(max_total_tokens, context_window - max_output_tokens)
    return max_total_tokens


def check_fits(system_prompt: str, user_message: str, budget: int) -> None:
    """What :func:`build_prompt` refuses whatever the turn finds (a 400 naming ``message``): the
    system prompt and the message alone over ``budget``. Checked before a message is stored, so
    a message that can never be answered is refused rather than answered with a failed run."""
    head = [Message("system", system_prompt)] if system_prompt else []
    _check_base(count_prompt([*head, Message("user", user_message)]), budget)


def _check_base(base: int, budget: int) -> None:
    if base > budget:
        raise ValidationError(
            f"the message and the assistant's instructions need {base} tokens, more than the "
            f"{budget} this assistant allows a prompt (contextManagement.maxTotalTokens and the "
            "model's context window): shorten the message",
            field="message",
        )


def build_prompt(
    *,
    system_prompt: str,
    history: Sequence[Message],
    user_message: str,
    task_results: Sequence[Mapping[str, Any]] = (),
    snippets: Sequence[Mapping[str, Any]] = (),
    max_recent_messages: int = 20,
    max_total_tokens: int = 4_000,
    context_window: int | None = None,
    max_output_tokens: int = 0,
) -> Prompt:
    """The messages for the provider (``history`` oldest first, as stored)."""
    budget = prompt_budget(max_total_tokens, context_window, max_output_tokens)
    user = Message("user", user_message)
    kept = list(snippets)

    def system(snips: Sequence[Mapping[str, Any]]) -> list[Message]:
        text = "\n\n".join(p for p in (system_prompt, context_block(task_results, snips)) if p)
        return [Message("system", text)] if text else []

    head = system(kept)
    while kept and count_prompt([*head, user]) > budget:  # lowest ranked snippets go first
        kept.pop()
        head = system(kept)
    base = count_prompt([*head, user])
    _check_base(base, budget)
    chosen: list[list[Message]] = []
    count, tokens = 0, base
    for unit in reversed(_units(history)):  # newest first, whole units only
        cost = count_prompt(unit) - _PRIMING  # a prompt's count is its messages' counts summed
        if count + len(unit) > max_recent_messages or tokens + cost > budget:
            break
        chosen.insert(0, unit)
        count, tokens = count + len(unit), tokens + cost
    window = [m for u in chosen for m in u]
    messages = [*head, *window, user]
    return Prompt(
        messages=messages,
        tokens=tokens,
        snippets=kept,
        history_used=len(window),
        history_dropped=len(history) - len(window),
        snippets_dropped=len(snippets) - len(kept),
    )


def citations(snippets: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The snippets a prompt held, as a reply's citations (``n`` is the number the text cites)."""
    return [
        {
            "n": n,
            "document_id": s.get("document_id"),
            "title": s.get("title"),
            "file_name": s.get("file_name"),
            "page_numbers": s.get("page_numbers"),
            "collection": s.get("collection"),
            "score": s.get("score"),
            "chunk_index": s.get("chunk_index"),
            "text": _clip(str(s.get("text") or ""), 500),
        }
        for n, s in enumerate(snippets, 1)
    ]


def _units(history: Sequence[Message]) -> list[list[Message]]:
    """Messages grouped so that a tool call and its results are never split."""
    units: list[list[Message]] = []
    for message in history:
        if message.role == "tool" and units and _open_calls(units[-1]):
            units[-1].append(message)
        elif message.role == "tool":
            continue  # a result whose call is gone: a provider would refuse it
        else:
            units.append([message])
    return [u for u in units if not _open_calls(u)]  # a call whose results are gone: likewise


def _open_calls(unit: Sequence[Message]) -> bool:
    calls = {c.id for c in unit[0].tool_calls}
    return bool(calls - {m.tool_call_id for m in unit[1:]})


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
