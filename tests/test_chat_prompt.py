"""The chat prompt (``linqra/assistants/prompt.py``): the history window by message count and by
real token count, tool calls kept with their results, snippets numbered and dropped lowest
ranked first, and a turn that cannot fit refused before the provider is asked."""

from __future__ import annotations

import pytest

from linqra.assistants.prompt import build_prompt, citations
from linqra.errors import ValidationError
from linqra.llm.tokens import count_prompt
from linqra.llm.types import Message, ToolCall


def turns(n: int, words: int = 5) -> list[Message]:
    return [
        Message("user" if i % 2 == 0 else "assistant", " ".join(f"w{i}x{j}" for j in range(words)))
        for i in range(n)
    ]


def test_the_most_recent_messages_up_to_the_count_oldest_first() -> None:
    history = turns(10)
    prompt = build_prompt(
        system_prompt="Be brief.", history=history, user_message="now?", max_recent_messages=4
    )
    assert prompt.messages[0] == Message("system", "Be brief.")
    assert prompt.messages[1:-1] == history[-4:]
    assert prompt.messages[-1] == Message("user", "now?")
    assert (prompt.history_used, prompt.history_dropped) == (4, 6)
    assert prompt.tokens == count_prompt(prompt.messages)  # the sum of parts is the real count


def test_the_token_budget_drops_the_oldest_and_is_never_exceeded() -> None:
    history = turns(30, words=40)
    for budget in (200, 500, 1000, 3000):
        prompt = build_prompt(
            system_prompt="",
            history=history,
            user_message="the question",
            max_recent_messages=100,
            max_total_tokens=budget,
        )
        assert count_prompt(prompt.messages) == prompt.tokens <= budget
        kept = prompt.messages[:-1]
        assert kept == history[len(history) - len(kept) :]  # a suffix: the newest ones
        one_more = [history[len(history) - len(kept) - 1], *prompt.messages]
        assert count_prompt(one_more) > budget  # as many as fit, not fewer


def test_the_context_window_less_the_reply_allowance_bounds_it_too() -> None:
    history = turns(30, words=40)
    prompt = build_prompt(
        system_prompt="",
        history=history,
        user_message="q",
        max_recent_messages=100,
        max_total_tokens=100_000,
        context_window=1200,
        max_output_tokens=1000,
    )
    assert prompt.tokens <= 200


def test_a_tool_call_and_its_results_are_kept_or_dropped_together() -> None:
    call = Message("assistant", "", tool_calls=(ToolCall("c1", "lookup", '{"q": "x"}'),))
    result = Message("tool", "found " + "data " * 30, tool_call_id="c1")
    history = [Message("user", "look it up"), call, result, Message("assistant", "done")]
    full = build_prompt(system_prompt="", history=history, user_message="q", max_recent_messages=10)
    assert full.messages[:-1] == history
    # room for the last message and one more: the pair does not fit whole, so neither is sent
    two = build_prompt(system_prompt="", history=history, user_message="q", max_recent_messages=2)
    assert two.messages[:-1] == history[-1:]
    # a result whose call is not in the history is never sent alone
    orphan = build_prompt(
        system_prompt="", history=history[2:], user_message="q", max_recent_messages=10
    )
    assert all(m.role != "tool" for m in orphan.messages)


def test_snippets_are_numbered_and_the_lowest_ranked_go_first() -> None:
    snippets = [
        {"document_id": f"d{i}", "title": f"Doc {i}", "text": "fact " * 100, "score": 1 - i / 10}
        for i in range(5)
    ]
    roomy = build_prompt(
        system_prompt="Help.",
        history=[],
        user_message="q",
        snippets=snippets,
        task_results=[{"status": "completed", "name": "weather", "answer": "sunny"}],
        max_total_tokens=10_000,
    )
    system = roomy.messages[0].content
    assert system.startswith("Help.") and "- weather: sunny" in system
    assert "[1] Doc 0:" in system and "[5] Doc 4:" in system
    tight = build_prompt(
        system_prompt="Help.", history=[], user_message="q", snippets=snippets, max_total_tokens=400
    )
    assert 0 < len(tight.snippets) < 5 and tight.snippets == snippets[: len(tight.snippets)]
    assert tight.snippets_dropped == 5 - len(tight.snippets) and tight.tokens <= 400
    assert [c["n"] for c in citations(tight.snippets)] == list(range(1, len(tight.snippets) + 1))


def test_a_turn_that_cannot_fit_is_refused_naming_the_message() -> None:
    with pytest.raises(ValidationError) as err:
        build_prompt(system_prompt="", history=[], user_message="word " * 500, max_total_tokens=100)
    assert err.value.field == "message"
    assert f"need {count_prompt([Message('user', 'word ' * 500)])} tokens" in err.value.message
