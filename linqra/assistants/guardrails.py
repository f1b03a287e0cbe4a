"""Guardrails on an assistant's chat: the user's message is checked before it reaches the
provider, and the model's reply is filtered while it streams. Pure code, no I/O.

Input, :func:`check_input`: a message that is empty, longer than ``input.maxLength`` or matched
by one of ``input.blockedPatterns`` is refused with a 400 :class:`~linqra.errors.ValidationError`
on field ``message`` naming the rule (``input.blockedPatterns[2]``), never echoing the text.
Otherwise the PII kinds in ``input.redactPii`` are replaced by ``[EMAIL]``, ``[PHONE]``, … in
:attr:`InputResult.text_to_send`: that text, not the original, goes to the provider and is stored.

Output, :class:`OutputFilter`: fed the model's deltas, it keeps the last ``holdBackChars``
characters (plus :data:`LOOKAHEAD_CHARS`) unreleased, so a PII match or blocked phrase of up to
``holdBackChars`` characters is redacted, or blocks the reply, before any of it leaves. With
``action="block"`` a blocked pattern turns the whole reply into ``output.blockedMessage``.
:func:`redact_text` is the same rule applied to a whole, non-streamed answer; the filter's
:attr:`~OutputFilter.final_text` equals it (unless a look-ahead reaches past ``holdBackChars`` or
a look-behind back past 256 released characters: a reply blocked while streaming stays blocked).

Regular expressions come from assistant admins, so they run on the ``regex`` package with a time
limit: the standard ``re`` cannot be interrupted and holds the GIL, so one ``(a|aa)+$`` would stall
the server. All patterns of one check share :data:`MATCH_BUDGET_SECONDS`; a check that runs out
fails closed (the message is refused, the reply withheld) and logs the rule. Matches are taken as
``finditer`` finds them in the whole text; empty matches never fire. Overlapping matches of
several rules are redacted as one span, named after the one starting first (the longest at a tie).

PII detection is hand-written patterns plus checksums (Luhn, IBAN mod-97, …): why, and what
each kind takes, is in :mod:`linqra.assistants._pii`.

Every function takes the whole :class:`GuardrailSettings` or just the side it applies
(:class:`InputGuardrails` for :func:`check_input`, :class:`OutputGuardrails` for the others).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, TypeAlias, TypedDict

import regex  # type: ignore[import-untyped]
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

from linqra.assistants._pii import DETECTORS, LOOKAHEAD_CHARS, PII_KINDS, PiiKind
from linqra.errors import ValidationError

__all__ = [
    "LOOKAHEAD_CHARS",
    "MATCH_BUDGET_SECONDS",
    "PATTERN_KIND",
    "PII_KINDS",
    "Delta",
    "Emit",
    "GuardrailSettings",
    "InputGuardrails",
    "InputResult",
    "OutputFilter",
    "OutputGuardrails",
    "PiiKind",
    "Redaction",
    "Replace",
    "check_input",
    "redact_text",
]

logger = logging.getLogger(__name__)

MATCH_BUDGET_SECONDS = 0.25
"""Time for all admin patterns of one check together (the ``regex`` engine may overshoot it)."""
PATTERN_KIND = "blocked_pattern"
"""The :class:`Redaction` kind of an output ``blockedPatterns`` match under ``action="redact"``."""
_CONTEXT = 256  # released characters the filter keeps so look-behinds still see them
_PATTERN_SHOWN = 60


# -- settings ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> Any:
    return regex.compile(pattern, regex.V0)


def _compiles(pattern: str) -> str:
    try:
        _compile(pattern)
    except (regex.error, OverflowError, RecursionError, ValueError) as exc:
        shown = pattern if len(pattern) <= _PATTERN_SHOWN else pattern[: _PATTERN_SHOWN - 1] + "…"
        raise PydanticCustomError(
            "invalid_pattern",
            "{pattern} is not a valid regular expression: {error}",
            {"pattern": repr(shown), "error": str(exc)},
        ) from None
    return pattern


_Pattern = Annotated[
    str, StringConstraints(min_length=1, max_length=500), AfterValidator(_compiles)
]


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    blockedPatterns: list[_Pattern] = Field(
        default_factory=list,
        max_length=50,
        description="Regular expressions (Python syntax; `(?i)` for any case) that must not match.",
    )
    redactPii: list[PiiKind] = Field(
        default_factory=list, description="PII kinds replaced by `[EMAIL]`, `[PHONE]`, …"
    )

    @field_validator("redactPii")
    @classmethod
    def _once_each(cls, kinds: list[PiiKind]) -> list[PiiKind]:
        return list(dict.fromkeys(kinds))


class InputGuardrails(_Rules):
    """Rules on the user's message: a match of ``blockedPatterns`` refuses it (400)."""

    maxLength: int = Field(default=8000, ge=1, le=100_000, description="In characters.")
    blockedMessage: str = Field(
        default="This message can't be sent: it breaks the assistant's rules.",
        min_length=1,
        max_length=1000,
        description="The 400's message when a blocked pattern matches (the rule is added).",
    )


class OutputGuardrails(_Rules):
    """Rules on the model's reply: PII is redacted; ``action`` says what a pattern match does."""

    action: Literal["redact", "block"] = Field(
        default="redact",
        description="`redact`: a pattern match becomes `[REDACTED]`; `block`: the whole reply "
        "becomes `blockedMessage`.",
    )
    holdBackChars: int = Field(
        default=64,
        ge=0,
        le=2000,
        description="Characters kept unreleased while streaming: matches up to this long never leak.",
    )
    blockedMessage: str = Field(
        default="This reply was withheld by the assistant's guardrails.",
        min_length=1,
        max_length=1000,
        description="The reply shown and stored instead when it is blocked.",
    )


class GuardrailSettings(BaseModel):
    """An assistant's guardrails, as the API accepts them (camelCase, unknown fields refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: InputGuardrails = Field(default_factory=InputGuardrails)
    output: OutputGuardrails = Field(default_factory=OutputGuardrails)


# -- results -----------------------------------------------------------------------------------
class Redaction(TypedDict):
    """How many matches of one kind (a PII kind, or :data:`PATTERN_KIND`) were replaced."""

    kind: str
    count: int


@dataclass(frozen=True, slots=True)
class InputResult:
    """What to send to the provider (and store) in place of the user's message."""

    text_to_send: str
    redactions: list[Redaction]


@dataclass(frozen=True, slots=True)
class Delta:
    """Text released to the client, appended to what it has already shown."""

    text: str


@dataclass(frozen=True, slots=True)
class Replace:
    """The whole reply shown so far replaced by ``text`` (``message.replace`` on the wire)."""

    text: str


Emit: TypeAlias = Delta | Replace


# -- matching ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str  # a PII kind, or PATTERN_KIND
    pattern: Any  # regex.Pattern
    order: int  # a tie between overlapping matches goes to the lower
    check: Callable[[str], int] | None = None  # built-ins: the length of a match to keep, 0: drop
    index: int = -1  # the blockedPatterns index
    builtin: bool = False


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int
    rule: _Rule


class _TimedOut(Exception):
    def __init__(self, rule: _Rule) -> None:
        super().__init__(rule.index)
        self.rule = rule


class _Budget:
    def __init__(self, seconds: float) -> None:
        self._until = time.monotonic() + seconds

    def left(self) -> float:
        return max(self._until - time.monotonic(), 1e-4)


@functools.lru_cache(maxsize=64)
def _pii_rules(kinds: tuple[PiiKind, ...]) -> tuple[_Rule, ...]:
    rules: list[_Rule] = []
    for kind in kinds:
        for source, check in DETECTORS[kind]:
            pattern = regex.compile(source, regex.V0 | regex.ASCII)
            rules.append(_Rule(kind, pattern, len(rules), check, builtin=True))
    return tuple(rules)


def _rules(rules: _Rules, *, with_pii: bool = True, with_patterns: bool = True) -> list[_Rule]:
    out = list(_pii_rules(tuple(rules.redactPii))) if with_pii else []
    if with_patterns:
        out += [
            _Rule(PATTERN_KIND, _compile(p), len(out) + i, index=i)
            for i, p in enumerate(rules.blockedPatterns)
        ]
    return out


def _find(rule: _Rule, text: str, pos: int, budget: _Budget) -> Iterator[_Span]:
    """Non-empty matches of ``rule`` from ``pos`` (look-behinds see the text before it)."""
    if not rule.builtin:
        try:
            for m in rule.pattern.finditer(text, pos=pos, timeout=budget.left()):
                if m.end() > m.start():
                    yield _Span(m.start(), m.end(), rule)
        except TimeoutError:
            raise _TimedOut(rule) from None
        return
    while (m := rule.pattern.search(text, pos)) is not None:
        keep = rule.check(m.group()) if rule.check else m.end() - m.start()
        if keep:
            yield _Span(m.start(), m.start() + keep, rule)
        pos = m.start() + (keep or 1)


def _scan(rules: Sequence[_Rule], text: str, pos: int, budget: _Budget) -> list[_Span]:
    return [span for rule in rules for span in _find(rule, text, pos, budget)]


def _merge(spans: list[_Span]) -> list[_Span]:
    """Overlapping spans as one, named after the first; sorted and disjoint."""
    merged: list[_Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end, s.rule.order)):
        if merged and span.start < merged[-1].end:
            if span.end > merged[-1].end:
                merged[-1] = replace(merged[-1], end=span.end)
        else:
            merged.append(span)
    return merged


def _render(text: str, start: int, stop: int, spans: Sequence[_Span]) -> str:
    parts, at = [], start
    for span in spans:
        label = "REDACTED" if span.rule.kind == PATTERN_KIND else span.rule.kind.upper()
        parts += [text[at : span.start], f"[{label}]"]
        at = span.end
    parts.append(text[at:stop])
    return "".join(parts)


def _count(spans: Sequence[_Span]) -> list[Redaction]:
    counts: dict[str, int] = {}
    for span in spans:
        counts[span.rule.kind] = counts.get(span.rule.kind, 0) + 1
    return [Redaction(kind=kind, count=n) for kind, n in counts.items()]


def _timed_out(rule: _Rule, side: str) -> None:
    logger.warning(
        "guardrail pattern ran out of time: %s.blockedPatterns[%d]; failing closed",
        side,
        rule.index,
    )


# -- input -------------------------------------------------------------------------------------
def check_input(settings: GuardrailSettings | InputGuardrails, text: str) -> InputResult:
    """The user's message as it may be sent, or a 400 on ``message`` naming the rule it breaks."""
    rules = settings.input if isinstance(settings, GuardrailSettings) else settings
    if not text.strip():
        raise ValidationError("message is empty", field="message")
    if len(text) > rules.maxLength:
        raise ValidationError(
            f"message is {len(text)} characters long; the limit is {rules.maxLength} "
            "(input.maxLength)",
            field="message",
        )
    budget = _Budget(MATCH_BUDGET_SECONDS)
    for rule in _rules(rules, with_pii=False):
        where = f"input.blockedPatterns[{rule.index}]"
        try:
            hit = next(_find(rule, text, 0, budget), None)
        except _TimedOut:
            _timed_out(rule, "input")
            raise ValidationError(
                f"message could not be checked against {where} in time; it is refused",
                field="message",
                details=[{"field": "message", "rule": where, "type": "pattern_timeout"}],
            ) from None
        if hit is not None:
            raise ValidationError(
                f"{rules.blockedMessage} (rule {where})",
                field="message",
                details=[{"field": "message", "rule": where, "type": "blocked_pattern"}],
            )
    spans = _merge(_scan(_rules(rules, with_patterns=False), text, 0, budget))
    return InputResult(_render(text, 0, len(text), spans), _count(spans))


# -- output ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Applied:
    text: str
    redactions: list[Redaction]
    blocked: bool = False


def _apply(out: OutputGuardrails, rules: Sequence[_Rule], text: str) -> _Applied:
    """The whole reply under the output rules."""
    try:
        spans = _scan(rules, text, 0, _Budget(MATCH_BUDGET_SECONDS))
    except _TimedOut as exc:
        _timed_out(exc.rule, "output")
        return _Applied(out.blockedMessage, [], blocked=True)
    if out.action == "block" and any(s.rule.kind == PATTERN_KIND for s in spans):
        return _Applied(out.blockedMessage, [], blocked=True)
    merged = _merge(spans)
    return _Applied(_render(text, 0, len(text), merged), _count(merged))


def redact_text(settings: GuardrailSettings | OutputGuardrails, text: str) -> str:
    """A whole (non-streamed) reply under the output rules: what is shown and stored."""
    out = _output(settings)
    return _apply(out, _rules(out), text).text


def _output(settings: GuardrailSettings | OutputGuardrails) -> OutputGuardrails:
    return settings.output if isinstance(settings, GuardrailSettings) else settings


class OutputFilter:
    """The output rules on a streamed reply; one filter per reply, fed its deltas in order.

    :meth:`feed` returns what may be released now. Text is released once it is more than
    ``holdBackChars + LOOKAHEAD_CHARS`` characters from the end of what arrived and lies in no
    match, so a match of up to ``holdBackChars`` characters is redacted (or blocks the reply)
    before any of it leaves, and what was released is a prefix of :attr:`final_text`. A longer
    match may be released in part; :meth:`finish` applies the rules to the whole reply (exactly
    :func:`redact_text`) and answers a :class:`Replace` if the released text is not its prefix.
    A blocked reply becomes ``blockedMessage`` at once — a :class:`Replace` if anything was
    released, else a :class:`Delta` — and nothing more is released. With no output rules every
    delta is released as it comes.
    """

    def __init__(self, settings: GuardrailSettings | OutputGuardrails) -> None:
        self._out = _output(settings)
        self._rules = _rules(self._out)
        self._held = self._out.holdBackChars + LOOKAHEAD_CHARS
        self._chunks: list[str] = []  # the raw reply
        self._window = ""  # the raw reply from ``_base`` on
        self._base = 0
        self._done = 0  # raw characters released (or redacted) so far
        self._scanned = 0  # raw length at the last scan
        self._shown: list[str] = []  # what the client shows: the last Replace and Deltas since
        self._blocked = False
        self._finished = False
        self._final: str | None = None
        self._redactions: list[Redaction] = []

    @property
    def final_text(self) -> str:
        """After :meth:`finish`: the reply to store. Before: the text the client shows now."""
        return self._final if self._final is not None else "".join(self._shown)

    @property
    def blocked(self) -> bool:
        return self._blocked

    @property
    def redactions(self) -> list[Redaction]:
        """After :meth:`finish`: how many matches of each kind the final text replaced."""
        return list(self._redactions)

    def feed(self, delta: str) -> list[Emit]:
        """The model's next delta in; what may be released now out."""
        if self._finished:
            raise RuntimeError("OutputFilter.feed() after finish()")
        if not delta:
            return []
        self._chunks.append(delta)
        if not self._rules:
            return self._show(Delta(delta))
        if self._blocked:
            return []
        self._window += delta
        end = self._base + len(self._window)
        pending = end - self._done
        if pending > 4 * self._held + 1024 and end - self._scanned < pending // 4:
            return []  # a long match still open: rescan in growing steps, not on every delta
        self._scanned = end
        return self._release(end - self._held)

    def finish(self) -> list[Emit]:
        """The reply is complete: release the rest, or a :class:`Replace` with the final text."""
        if self._finished:
            return []
        self._finished = True
        raw = "".join(self._chunks)
        if not self._rules:
            self._final = raw
            return []
        if self._blocked:
            self._final = self._out.blockedMessage
            return []
        applied = _apply(self._out, self._rules, raw)
        final = self._final = applied.text
        self._redactions, self._blocked = applied.redactions, applied.blocked
        shown = "".join(self._shown)
        if final.startswith(shown):
            return [Delta(final[len(shown) :])] if len(final) > len(shown) else []
        self._shown = [final]
        return [Replace(final)]

    def _release(self, limit: int) -> list[Emit]:
        if limit <= self._done:
            return []
        window, base = self._window, self._base
        try:
            spans = _scan(self._rules, window, self._done - base, _Budget(MATCH_BUDGET_SECONDS))
        except _TimedOut as exc:
            _timed_out(exc.rule, "output")
            return self._block()
        cut = limit - base
        if self._out.action == "block" and any(
            s.rule.kind == PATTERN_KIND and s.end <= cut for s in spans
        ):
            return self._block()  # settled: it ends before the held-back text
        merged = _merge(spans)
        for span in merged:
            if span.start < cut < span.end:
                cut = span.start  # never release part of a match
        start = self._done - base
        if cut <= start:
            return []
        text = _render(window, start, cut, [s for s in merged if s.end <= cut])
        self._done = base + cut
        keep = max(self._done - _CONTEXT, base)
        self._window, self._base = window[keep - base :], keep
        return self._show(Delta(text)) if text else []

    def _block(self) -> list[Emit]:
        self._blocked = True
        message = self._out.blockedMessage
        emit: Emit = Replace(message) if any(self._shown) else Delta(message)
        self._shown = []
        return self._show(emit)

    def _show(self, emit: Emit) -> list[Emit]:
        if isinstance(emit, Replace):
            self._shown = []
        self._shown.append(emit.text)
        return [emit]
