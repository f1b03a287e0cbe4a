"""Step conditions and jump conditions: a small, safe expression language.

``"{{step1.result.count}} > 0"``, ``"{{step1.result.shouldSync}} == false"``,
``"{{params.mode}} == 'full' && !{{step2.result.cached??false}}"``.

Grammar (no ``eval``, no attribute access, no calls)::

    expr   := or
    or     := and (("||" | "or") and)*
    and    := not (("&&" | "and") not)*
    not    := ("!" | "not") not | cmp
    cmp    := atom (("==" | "!=" | ">" | ">=" | "<" | "<=") atom)?
    atom   := {{reference}} | number | 'text' | "text" | true | false | null | bareword | "(" expr ")"

A ``{{reference}}`` is substituted as a typed value, never re-parsed as text,
so a step's output cannot inject operators. Comparisons coerce numeric text to
numbers and ``"true"``/``"false"`` text to booleans, as Linqra's text
interpolation made them compare. A lone value is tested for truthiness.

Limits (a :class:`ConditionError`, reported as a 400 on ``steps[i].condition``):
at most ``MAX_CONDITION_LENGTH`` characters (2,000) and ``MAX_CONDITION_DEPTH``
nested parentheses and negations (32), so the recursive-descent parser can never
exhaust the stack.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from linqra.workflows.interpolation import PLACEHOLDER, Scope, evaluate, parse_expression

__all__ = [
    "MAX_CONDITION_DEPTH",
    "MAX_CONDITION_LENGTH",
    "ConditionError",
    "check_condition",
    "evaluate_condition",
]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<ref>\{\{.*?\}\})
      | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w.])
      | (?P<str>'[^']*'|"[^"]*")
      | (?P<op>==|!=|>=|<=|&&|\|\||[<>!()])
      | (?P<word>[^\s=!<>()&|'"]+)
    )""",
    re.VERBOSE | re.DOTALL,
)
MAX_CONDITION_LENGTH = 2000
MAX_CONDITION_DEPTH = 32


class ConditionError(ValueError):
    """A condition that does not parse."""


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str


def _tokenize(text: str) -> list[_Tok]:
    if len(text) > MAX_CONDITION_LENGTH:
        raise ConditionError(f"condition longer than {MAX_CONDITION_LENGTH} characters")
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ConditionError(f"cannot read condition at {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        value = match[kind]
        if kind == "word" and value in ("and", "or", "not"):
            kind = "op"
            value = {"and": "&&", "or": "||", "not": "!"}[value]
        tokens.append(_Tok(kind, value))
        pos = match.end()
    if not tokens:
        raise ConditionError("empty condition")
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Tok], scope: Scope | None) -> None:
        self.tokens = tokens
        self.pos = 0
        self.scope = scope  # None: only check the syntax
        self.depth = 0

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_CONDITION_DEPTH:
            raise ConditionError(
                f"condition nested deeper than {MAX_CONDITION_DEPTH} levels "
                "(parentheses and negations)"
            )

    def peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, text: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text == text:
            self.pos += 1
            return True
        return False

    def parse(self) -> Any:
        value = self.or_()
        if self.peek() is not None:
            raise ConditionError(f"unexpected {self.peek().text!r} in condition")  # type: ignore[union-attr]
        return value

    def or_(self) -> Any:
        value = self.and_()
        while self.take("||"):
            right = self.and_()
            value = _truthy(value) or _truthy(right)
        return value

    def and_(self) -> Any:
        value = self.not_()
        while self.take("&&"):
            right = self.not_()
            value = _truthy(value) and _truthy(right)
        return value

    def not_(self) -> Any:
        if self.take("!"):
            self.enter()
            value = not _truthy(self.not_())
            self.depth -= 1
            return value
        return self.cmp()

    def cmp(self) -> Any:
        left = self.atom()
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text in ("==", "!=", ">", ">=", "<", "<="):
            self.pos += 1
            right = self.atom()
            return _compare(tok.text, left, right)
        return left

    def atom(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise ConditionError("condition ends too early")
        self.pos += 1
        if tok.kind == "op" and tok.text == "(":
            self.enter()
            value = self.or_()
            if not self.take(")"):
                raise ConditionError("missing ')' in condition")
            self.depth -= 1
            return value
        if tok.kind == "op":
            raise ConditionError(f"unexpected {tok.text!r} in condition")
        if tok.kind == "ref":
            alternatives = parse_expression(tok.text[2:-2])
            return None if self.scope is None else evaluate(alternatives, self.scope)
        if tok.kind == "num":
            return json.loads(tok.text)
        if tok.kind == "str":
            return tok.text[1:-1]
        return {"true": True, "false": False, "null": None}.get(tok.text, tok.text)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "null", "none")
    return bool(value)


def _coerce(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        try:
            return (
                json.loads(text) if re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text) else value
            )
        except ValueError:
            return value
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    a, b = _coerce(left), _coerce(right)
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    try:
        return bool({">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op])
    except TypeError:
        return False


def check_condition(text: str) -> None:
    """Raise :class:`ConditionError` if ``text`` does not parse (references unchecked)."""
    for match in PLACEHOLDER.finditer(text):
        parse_expression(match[1])
    try:
        _Parser(_tokenize(text), None).parse()
    except RecursionError:  # the depth limit should make this unreachable
        raise ConditionError("condition nested too deeply") from None


def evaluate_condition(text: str, scope: Scope) -> bool:
    """Evaluate ``text`` against ``scope``; :class:`MissingReference` if a path is missing."""
    try:
        return _truthy(_Parser(_tokenize(text), scope).parse())
    except RecursionError:
        raise ConditionError("condition nested too deeply") from None
