"""Guardrails on an assistant's chat (linqra/assistants/guardrails.py): the settings as the API
takes them, the input check, the built-in PII detectors, and the streaming output filter —
whose released text, however the reply is cut into deltas, ends as exactly what
``redact_text`` makes of the whole reply, and never shows a match it holds back for.

Pure code: no server. Hypothesis is derandomized and keeps no example database.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from linqra.assistants import guardrails as guardrails_module
from linqra.assistants._pii import IBAN_LENGTHS, PII_KINDS, luhn
from linqra.assistants.guardrails import (
    LOOKAHEAD_CHARS,
    Delta,
    Emit,
    GuardrailSettings,
    InputGuardrails,
    OutputFilter,
    OutputGuardrails,
    Replace,
    check_input,
    redact_text,
)
from linqra.errors import ValidationError
from linqra.validation import parse_model

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=120)


def guardrails(**output: object) -> GuardrailSettings:
    return GuardrailSettings.model_validate({"output": output})


def stream(settings: GuardrailSettings, deltas: Sequence[str]) -> tuple[OutputFilter, list[Emit]]:
    f = OutputFilter(settings)
    emits = [e for d in deltas for e in f.feed(d)]
    return f, emits + f.finish()


def screens(emits: Sequence[Emit]) -> list[str]:
    """What the client showed just before each Replace, and at the end."""
    shown, seen = "", []
    for e in emits:
        if isinstance(e, Replace):
            seen.append(shown)
            shown = e.text
        else:
            shown += e.text
    return [*seen, shown]


def cut(text: str, sizes: Sequence[int]) -> list[str]:
    out, at = [], 0
    for n in sizes:
        out.append(text[at : at + n])
        at += n
    return [*out, text[at:]]


# -- settings ----------------------------------------------------------------------------------
def test_settings_default_to_no_rules_and_take_the_api_names() -> None:
    s = GuardrailSettings()
    assert (s.input.maxLength, s.input.blockedPatterns, s.input.redactPii) == (8000, [], [])
    assert (s.output.action, s.output.holdBackChars) == ("redact", 64)
    body = {
        "input": {"maxLength": 10, "blockedPatterns": ["(?i)password"], "redactPii": ["email"]},
        "output": {"redactPii": ["iban", "iban"], "action": "block", "holdBackChars": 0},
    }
    s = parse_model(GuardrailSettings, body)
    assert s.input.maxLength == 10 and s.output.redactPii == ["iban"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": {"blockedPatterns": ["ok", "(unclosed"]}}, "input.blockedPatterns[1]"),
        ({"output": {"blockedPatterns": ["x" * 501]}}, "output.blockedPatterns[0]"),
        ({"output": {"blockedPatterns": [""]}}, "output.blockedPatterns[0]"),
        ({"input": {"blockedPatterns": ["a"] * 51}}, "input.blockedPatterns"),
        ({"input": {"maxLength": 100_001}}, "input.maxLength"),
        ({"input": {"maxLength": 0}}, "input.maxLength"),
        ({"output": {"holdBackChars": 2001}}, "output.holdBackChars"),
        ({"output": {"action": "warn"}}, "output.action"),
        ({"output": {"redactPii": ["passport"]}}, "output.redactPii[0]"),
        ({"input": {"max_length": 5}}, "input.max_length"),
        ({"pii": {"enabled": True}}, "pii"),
    ],
)
def test_bad_settings_are_a_400_naming_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_model(GuardrailSettings, body, prefix="guardrails.")
    assert err.value.status == 400
    assert err.value.field == f"guardrails.{field}"


def test_a_pattern_that_does_not_compile_is_named_in_the_message() -> None:
    with pytest.raises(ValidationError) as err:
        parse_model(GuardrailSettings, {"input": {"blockedPatterns": ["(unclosed"]}})
    assert "'(unclosed' is not a valid regular expression" in err.value.message


# -- input -------------------------------------------------------------------------------------
def test_input_pii_is_redacted_in_what_is_sent_and_counted() -> None:
    rules = InputGuardrails(redactPii=["email", "credit_card"])
    result = check_input(rules, "mail a@example.com or b@example.org, card 4111 1111 1111 1111")
    assert result.text_to_send == "mail [EMAIL] or [EMAIL], card [CREDIT_CARD]"
    assert result.redactions == [{"kind": "email", "count": 2}, {"kind": "credit_card", "count": 1}]
    assert check_input(GuardrailSettings(input=rules), "hi").text_to_send == "hi"


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_an_empty_message_is_a_400(text: str) -> None:
    with pytest.raises(ValidationError) as err:
        check_input(GuardrailSettings(), text)
    assert (err.value.status, err.value.field) == (400, "message")


def test_a_message_over_max_length_is_a_400_naming_the_limit() -> None:
    rules = InputGuardrails(maxLength=5)
    assert check_input(rules, "12345").text_to_send == "12345"
    with pytest.raises(ValidationError) as err:
        check_input(rules, "123456")
    assert (err.value.status, err.value.field) == (400, "message")
    assert "input.maxLength" in err.value.message and "123456" not in err.value.message


def test_a_blocked_message_names_the_rule_and_never_the_text() -> None:
    rules = InputGuardrails(blockedPatterns=["(?i)competitor", r"(?i)password\W+\w+"])
    text = "my Password: hunter2, what now?"
    with pytest.raises(ValidationError) as err:
        check_input(rules, text)
    e = err.value
    assert (e.status, e.field) == (400, "message")
    assert e.message == f"{rules.blockedMessage} (rule input.blockedPatterns[1])"
    assert e.details == [
        {"field": "message", "rule": "input.blockedPatterns[1]", "type": "blocked_pattern"}
    ]
    assert "hunter2" not in str(e.to_dict())


def test_a_pattern_that_only_matches_empty_text_never_fires() -> None:
    assert check_input(InputGuardrails(blockedPatterns=["x*", "^"]), "hello").text_to_send


def test_catastrophic_backtracking_is_stopped_with_a_400() -> None:
    rules = InputGuardrails(blockedPatterns=["(a+)+$"], maxLength=20_000)
    started = time.monotonic()
    with pytest.raises(ValidationError) as err:
        check_input(rules, "a" * 5000 + "!")
    assert time.monotonic() - started < 3  # the budget is 0.25 s; the engine overshoots a little
    assert err.value.status == 400 and err.value.field == "message"
    assert err.value.details == [
        {"field": "message", "rule": "input.blockedPatterns[0]", "type": "pattern_timeout"}
    ]


def test_catastrophic_backtracking_withholds_the_reply() -> None:
    s = guardrails(blockedPatterns=["(a|aa)+$"], holdBackChars=2000)
    started = time.monotonic()
    assert redact_text(s, "a" * 3000 + "!") == s.output.blockedMessage
    f, emits = stream(s, ["a" * 3000, "!"])
    assert time.monotonic() - started < 6
    assert screens(emits)[-1] == f.final_text == s.output.blockedMessage and f.blocked


# -- PII detectors -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "found", "not_found"),
    [
        ("email", ["a@b.co", "john.doe+tag@mail.example.co.uk"], ["a@b", "@example.com", "x@y.z"]),
        (
            "phone",
            [
                "555-123-4567",
                "(555) 123-4567",
                "+49 30 1234567",
                "+4915112345678",
                "01 23 45 67 89",
            ],
            [
                "2024-01-15",
                "15.01.2024",
                "2024-01-15 10:30",
                "192.168.100.200",
                "12345",
                "555-1234",
            ],
        ),
        (
            "credit_card",
            ["4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005", "5555555555554444"],
            ["4111 1111 1111 1112", "1111 1111 1111 1117", "4111 1111 1111 1111 1111"],
        ),
        (
            "iban",
            ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "NO9386011117947"],
            ["DE89 3704 0044 0532 0130 01", "DE89 3704 0044 0532 0130", "ZZ89370400440532013000"],
        ),
        (
            "ip_address",
            ["10.0.0.1", "192.168.100.200", "fe80::1", "2001:db8::8a2e:370:7334"],
            ["256.1.1.1", "1.2.3", "12:30:45", "std::map", "::", "deadbeef"],
        ),
        ("us_ssn", ["123-45-6789", "123 45 6789"], ["000-12-3456", "666-12-3456", "123-00-4567"]),
    ],
)
def test_pii_detectors(kind: str, found: list[str], not_found: list[str]) -> None:
    rules = InputGuardrails(redactPii=[kind])  # type: ignore[list-item]
    label = f"[{kind.upper()}]"
    for value in found:
        assert check_input(rules, f"see {value}, ok").text_to_send == f"see {label}, ok", value
    for value in not_found:
        assert check_input(rules, f"see {value}, ok").text_to_send == f"see {value}, ok", value


def test_a_pii_match_stands_alone() -> None:
    rules = InputGuardrails(redactPii=list(PII_KINDS))
    for text in ["x4111111111111111", "4111111111111111x", "x123-45-6789", "v10.0.0.1"]:
        assert check_input(rules, text).text_to_send == text


def test_an_iban_is_taken_at_its_countrys_length_even_when_words_follow() -> None:
    rules = InputGuardrails(redactPii=["iban"])
    text = "pay DE89 3704 0044 0532 0130 00 AND NOT MORE"
    assert check_input(rules, text).text_to_send == "pay [IBAN] AND NOT MORE"
    assert IBAN_LENGTHS["DE"] == 22 and IBAN_LENGTHS["NO"] == 15 and len(IBAN_LENGTHS) > 80


def test_overlapping_matches_are_redacted_as_one() -> None:
    s = guardrails(redactPii=["email"], blockedPatterns=[r"example\.com and more"])
    assert redact_text(s, "to john@example.com and more.") == "to [EMAIL]."


# -- output filter -----------------------------------------------------------------------------
def test_with_no_output_rules_every_delta_is_released_at_once() -> None:
    s = GuardrailSettings(input=InputGuardrails(redactPii=["email"]))
    f = OutputFilter(s)
    for delta in ["Hi ", "a@b.co", "", " bye"]:
        assert f.feed(delta) == ([Delta(delta)] if delta else [])
    assert f.finish() == []
    assert f.final_text == "Hi a@b.co bye" == redact_text(s, "Hi a@b.co bye")


def test_the_last_hold_back_characters_stay_until_the_reply_ends() -> None:
    f = OutputFilter(OutputGuardrails(redactPii=["email"], holdBackChars=10))
    held = 10 + LOOKAHEAD_CHARS
    assert f.feed("a" * held) == []
    assert f.feed("bcd") == [Delta("aaa")]
    assert f.final_text == "aaa"  # before finish(): what the client shows
    assert f.finish() == [Delta("a" * (held - 3) + "bcd")]
    assert f.final_text == "a" * held + "bcd"


def test_an_email_cut_across_deltas_never_leaves() -> None:
    text = "Write to john.doe@example.com today, thanks a lot for everything."
    s = guardrails(redactPii=["email"], holdBackChars=24)
    f, emits = stream(s, list(text))
    assert all(isinstance(e, Delta) and "@" not in e.text for e in emits)
    assert f.final_text == "Write to [EMAIL] today, thanks a lot for everything."
    assert f.redactions == [{"kind": "email", "count": 1}]


def test_block_replaces_what_was_shown_and_releases_nothing_more() -> None:
    s = guardrails(blockedPatterns=["(?i)internal use only"], action="block", holdBackChars=32)
    text = "Sure! Here is the document, then the next part. It is INTERNAL USE ONLY: the plans."
    f, emits = stream(s, list(text))
    assert isinstance(emits[-1], Replace) and emits[-1].text == s.output.blockedMessage
    assert "INTERNAL" not in "".join(e.text for e in emits)
    assert f.final_text == s.output.blockedMessage == redact_text(s, text) and f.blocked
    assert f.redactions == []


def test_a_reply_blocked_before_anything_was_shown_is_one_delta() -> None:
    s = guardrails(blockedPatterns=[r"\bsecret\b"], action="block", holdBackChars=0)
    f = OutputFilter(s)
    assert f.feed("secret") == []  # it could still be "secretary"
    assert f.feed(" is out") == [Delta(s.output.blockedMessage)]
    assert f.feed("more") == [] and f.finish() == []
    assert f.final_text == s.output.blockedMessage and f.blocked
    blocked_later = [Delta("the "), Replace(s.output.blockedMessage)]
    assert stream(s, ["the secret", " is out"])[1] == blocked_later
    assert screens(stream(s, ["secretary", " is in"])[1]) == ["secretary is in"]


def test_a_match_longer_than_the_hold_back_is_replaced_when_the_reply_ends() -> None:
    s = guardrails(blockedPatterns=["(?i)top secret plans"], holdBackChars=4)
    text = "these are the top secret plans for tomorrow"
    f, emits = stream(s, list(text))
    assert isinstance(emits[-1], Replace)
    assert f.final_text == emits[-1].text == "these are the [REDACTED] for tomorrow"


def test_a_match_running_to_the_end_holds_the_rest_back() -> None:
    s = guardrails(blockedPatterns=[r"(?s)BEGIN PRIVATE.*"], holdBackChars=8)
    text = "Public part. BEGIN PRIVATE " + "lorem ipsum " * 800
    f, emits = stream(s, cut(text, [7] * (len(text) // 7)))
    assert all(isinstance(e, Delta) for e in emits)
    assert "".join(e.text for e in emits) == f.final_text == "Public part. [REDACTED]"


def test_feed_after_finish_is_an_error() -> None:
    f = OutputFilter(GuardrailSettings())
    f.finish()
    with pytest.raises(RuntimeError):
        f.feed("late")


# -- properties --------------------------------------------------------------------------------
def _with_luhn(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn(body + d))


def _iban(bban: str) -> str:
    check = 98 - int("".join(str(int(c, 36)) for c in bban + "DE00")) % 97
    return f"DE{check:02d}{bban}"


def _grouped(value: str, sep: str) -> str:
    return sep.join(value[i : i + 4] for i in range(0, len(value), 4))


EMAILS = st.from_regex(r"[a-z]{1,10}(\.[a-z]{1,5})?@[a-z]{1,10}\.(com|org|de)", fullmatch=True)
CARDS = st.builds(
    lambda body, sep: _grouped(_with_luhn("4" + body), sep),
    st.text("0123456789", min_size=14, max_size=14),
    st.sampled_from(["", " ", "-"]),
)
IBANS = st.builds(
    lambda bban, sep: _grouped(_iban(bban), sep),
    st.text("0123456789", min_size=18, max_size=18),
    st.sampled_from(["", " "]),
)
PHONES = st.builds(
    lambda area, number, shape: shape.format(area, number, number[:3], number[3:]),
    st.text("23456789", min_size=3, max_size=3),
    st.text("0123456789", min_size=7, max_size=7),
    st.sampled_from(["+49 30 {1}", "({0}) {1}", "{0}-{2}-{3}", "+1{0}{1}"]),
)
SSNS = st.builds(
    lambda a, b, c: f"{a}-{b:02d}-{c:04d}",
    st.integers(100, 665),
    st.integers(1, 99),
    st.integers(1, 9999),
)
IPS = st.builds(lambda *o: "10." + ".".join(map(str, o)), *[st.integers(0, 255)] * 3)
SECRETS = EMAILS | CARDS | IBANS | PHONES | SSNS | IPS
WORDS = st.sampled_from(
    ["the", "Secret", "secret", "forbidden", "word", "plans", "OK", "é", "über"]
)
SEPARATORS = st.sampled_from([" ", ", ", "; ", "\n", " (", ") "])
PATTERNS = ["(?i)secret", r"\bforbidden word\b"]
# pieces glued with no separator, so matches meet, overlap, and look around at each other
TANGLES = st.lists(
    st.sampled_from(
        [
            *["a", "b", "x", "DE", "1", "12", " ", ".", "-", "@", ":", "+", "(", ")", "\n", "ab"],
            *["a12b", "4111111111111111", "4111 1111 1111 1111", "10.0.0.1", "555-123-4567"],
            *["123-45-6789", "a@b.co", "DE89370400440532013000", "fe80::1", "+4915112345678"],
        ]
    ),
    max_size=40,
).map("".join)


@st.composite
def replies(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A reply of words and PII values, and the PII values in it."""
    parts, values = [], []
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.booleans()):
            values.append(draw(SECRETS))
            # not a space: two cards (phones, …) apart by one space read as one longer number
            parts += [values[-1], draw(st.sampled_from([", ", "; ", "\n", ") "]))]
        else:
            parts += [draw(WORDS), draw(SEPARATORS)]
    return "".join(parts), values


def splits(text: str) -> st.SearchStrategy[list[str]]:
    """``text`` in deltas: one character each, or 0-12 (enough of them to make many deltas)."""
    sizes = st.lists(st.integers(0, 12), min_size=len(text) // 6, max_size=len(text))
    return (st.just([1] * len(text)) | sizes).map(lambda sizes: cut(text, sizes))


@PROPERTY
@given(data=st.data(), action=st.sampled_from(["redact", "block"]), hold=st.sampled_from([32, 64]))
def test_any_split_releases_what_redact_text_makes_and_no_held_match_leaks(
    data: st.DataObject, action: str, hold: int
) -> None:
    text, values = data.draw(replies())
    s = guardrails(
        redactPii=list(PII_KINDS), blockedPatterns=PATTERNS, action=action, holdBackChars=hold
    )
    f, emits = stream(s, data.draw(splits(text)))
    shown = screens(emits)
    assert shown[-1] == f.final_text == redact_text(s, text)
    if not f.blocked:
        assert len(shown) == 1  # every match is shorter than the hold-back: no Replace
    for value in values:  # each is at most 31 characters, under the hold-back
        assert all(value not in screen for screen in shown), value
    if not f.blocked:
        assert not any(value in f.final_text for value in values)


@PROPERTY
@given(
    text=TANGLES,
    data=st.data(),
    action=st.sampled_from(["redact", "block"]),
    hold=st.sampled_from([0, 1, 5, 64]),
)
def test_any_split_of_any_text_ends_as_redact_text(
    text: str, data: st.DataObject, action: str, hold: int
) -> None:
    s = guardrails(
        redactPii=list(PII_KINDS),
        blockedPatterns=["^ab", r"a\d+b", "(?<=x)DE", "b$"],
        action=action,
        holdBackChars=hold,
    )
    f, emits = stream(s, data.draw(splits(text)))
    assert screens(emits)[-1] == f.final_text == redact_text(s, text)
    replaced = [i for i, e in enumerate(emits) if isinstance(e, Replace)]
    if not replaced:
        assert "".join(e.text for e in emits) == f.final_text
    else:
        last = replaced[-1]
        assert "".join(e.text for e in emits[last:]) == f.final_text


@PROPERTY
@given(
    text=TANGLES,
    data=st.data(),
    action=st.sampled_from(["redact", "block"]),
)
def test_text_released_before_the_end_is_a_prefix_of_the_redacted_reply(
    text: str, data: st.DataObject, action: str
) -> None:
    rules = {"redactPii": list(PII_KINDS), "blockedPatterns": ["^ab", "a[0-9]{1,3}b", "(?<=x)DE"]}
    s = guardrails(**rules, action=action, holdBackChars=24)
    # the promise holds for matches up to the hold-back: leave out texts with a longer one
    budget = guardrails_module._Budget(60)
    spans = guardrails_module._scan(guardrails_module._rules(s.output), text, 0, budget)
    assume(all(span.end - span.start <= 24 for span in spans))
    redacted = redact_text(guardrails(**rules, holdBackChars=24), text)
    f, emits = stream(s, data.draw(splits(text)))
    shown = screens(emits)
    for screen in shown[:-1] if f.blocked else shown:
        assert redacted.startswith(screen)
