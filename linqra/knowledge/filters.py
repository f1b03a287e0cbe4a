"""Metadata filters: parsed here, checked against the collection's fields, rendered for Milvus.

Two spellings, one meaning:

* an expression — ``author == "Seneca" and (year >= 1900 or language in ["la", "en"])``, with
  ``== != < <= > >=``, ``in`` / ``not in`` a list, ``and``, ``or``, ``not`` and parentheses;
* a JSON object — ``{"author": "Seneca", "year": {"$gte": 1900}, "$or": [...]}`` with
  ``$eq $ne $gt $gte $lt $lte $in $nin $and $or $not``.

Nothing the user writes reaches Milvus unparsed: fields must be filterable fields of the
collection, literals must match the field's type, and the output is re-rendered with our own
quoting. Errors are :class:`ValidationError` on ``filter`` saying where and what.

Limits, so neither parser can exhaust the stack and Milvus never sees a value it cannot
read: a filter is at most ``MAX_FILTER_LENGTH`` characters (4,096; the JSON form measured as
compact JSON) and ``MAX_FILTER_DEPTH`` levels deep (16: parentheses and ``not`` in an
expression; nested objects and lists in the JSON form); numbers are finite, and integers
fit in 64 bits (Milvus ``INT64``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from linqra.errors import ValidationError

__all__ = ["MAX_FILTER_DEPTH", "MAX_FILTER_LENGTH", "compile_filter"]

MAX_FILTER_LENGTH = 4_096
MAX_FILTER_DEPTH = 16
MAX_INT64 = 2**63 - 1
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_OPS = {"$eq": "==", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def compile_filter(raw: Any, fields: Mapping[str, str], field_name: str = "filter") -> str:
    """A Milvus boolean expression for ``raw`` (text, a JSON object, or empty)."""
    if raw is None or raw == "" or raw == {}:
        return ""
    if isinstance(raw, str):
        if len(raw) > MAX_FILTER_LENGTH:
            raise ValidationError(
                f"a filter is at most {MAX_FILTER_LENGTH} characters", field=field_name
            )
        try:
            return _Parser(raw, fields, field_name).parse()
        except RecursionError:  # the depth limit should make this unreachable
            raise ValidationError("the filter is nested too deeply", field=field_name) from None
    if isinstance(raw, Mapping):
        if _json_depth(raw) > MAX_FILTER_DEPTH:
            raise ValidationError(
                f"a filter is nested at most {MAX_FILTER_DEPTH} levels deep", field=field_name
            )
        try:
            size = len(json.dumps(raw, allow_nan=False, separators=(",", ":")))
        except (TypeError, ValueError):
            raise ValidationError(
                "a filter object holds only JSON values (finite numbers)", field=field_name
            ) from None
        if size > MAX_FILTER_LENGTH:
            raise ValidationError(
                f"a filter is at most {MAX_FILTER_LENGTH} characters", field=field_name
            )
        try:
            return _from_json(raw, fields, field_name)
        except RecursionError:
            raise ValidationError("the filter is nested too deeply", field=field_name) from None
    raise ValidationError("a filter is an expression (text) or a JSON object", field=field_name)


def _json_depth(value: Any) -> int:
    """Nesting of objects and lists, counted without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_FILTER_DEPTH:
            break
        if isinstance(item, Mapping):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _literal(value: Any, field: str, kind: str, where: str) -> str:
    ok = {
        "string": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
    }[kind]
    if not ok:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:36] + "…"
        raise ValidationError(f"{field} is a {kind} field; {shown} is not a {kind}", field=where)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"{field}: {value!r} is not a finite number", field=where)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT64:
        raise ValidationError(f"{field}: integers in a filter fit in 64 bits", field=where)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise ValidationError(f"{field}: text with an unpaired UTF-16 surrogate", field=where)
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _field(name: Any, fields: Mapping[str, str], where: str) -> str:
    if not isinstance(name, str) or name not in fields:
        known = ", ".join(sorted(fields))
        raise ValidationError(
            f"unknown filter field {name!r}; filterable fields are: {known}", field=where
        )
    return name


def _from_json(raw: Mapping[str, Any], fields: Mapping[str, str], where: str) -> str:
    parts = []
    for key, value in raw.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise ValidationError(f"{key} takes a non-empty list", field=where)
            joined = f" {key[1:]} ".join(
                f"({_from_json(item, fields, where)})" if isinstance(item, Mapping) else _bad(where)
                for item in value
            )
            parts.append(f"({joined})")
        elif key == "$not":
            if not isinstance(value, Mapping):
                raise ValidationError("$not takes an object", field=where)
            parts.append(f"not ({_from_json(value, fields, where)})")
        else:
            name = _field(key, fields, where)
            kind = fields[name]
            if isinstance(value, Mapping):
                for op, operand in value.items():
                    parts.append(_json_op(name, kind, op, operand, where))
            else:
                parts.append(f"{name} == {_literal(value, name, kind, where)}")
    if not parts:
        raise ValidationError("empty filter object", field=where)
    return " and ".join(parts)


def _bad(where: str) -> str:
    raise ValidationError("$and/$or items are objects", field=where)


def _json_op(name: str, kind: str, op: str, operand: Any, where: str) -> str:
    if op in _OPS:
        return f"{name} {_OPS[op]} {_literal(operand, name, kind, where)}"
    if op in ("$in", "$nin"):
        if not isinstance(operand, list) or not operand:
            raise ValidationError(f"{op} takes a non-empty list", field=where)
        items = ", ".join(_literal(v, name, kind, where) for v in operand)
        return f"{name} {'not in' if op == '$nin' else 'in'} [{items}]"
    raise ValidationError(
        f"unknown operator {op!r}; use {', '.join([*_OPS, '$in', '$nin'])}", field=where
    )


class _Parser:
    def __init__(self, text: str, fields: Mapping[str, str], where: str) -> None:
        self.text, self.fields, self.where = text, fields, where
        self.tokens: list[tuple[str, str, int]] = []
        self.depth = 0
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                self.fail(pos, f"unexpected {text[pos:].strip()[:10]!r}")
            assert match is not None
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind), match.start(kind)))
            pos = match.end()
        self.i = 0

    def fail(self, pos: int, message: str) -> None:
        raise ValidationError(
            f"filter does not parse at position {pos}: {message}", field=self.where
        )

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "", len(self.text))

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        token = self.peek()
        if value is not None and token[1].lower() != value:
            self.fail(token[2], f"expected {value!r}, found {token[1] or 'the end'!r}")
        self.i += 1
        return token

    def parse(self) -> str:
        out = self.disjunction()
        if self.peek()[0] != "end":
            self.fail(self.peek()[2], f"unexpected {self.peek()[1]!r}")
        return out

    def disjunction(self) -> str:
        parts = [self.conjunction()]
        while self.peek()[1].lower() == "or":
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"

    def conjunction(self) -> str:
        parts = [self.negation()]
        while self.peek()[1].lower() == "and":
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_FILTER_DEPTH:
            self.fail(
                self.peek()[2],
                f"nested deeper than {MAX_FILTER_DEPTH} levels (parentheses and not)",
            )

    def negation(self) -> str:
        if self.peek()[1].lower() == "not":
            self.take()
            self.enter()
            out = f"not ({self.negation()})"
            self.depth -= 1
            return out
        if self.peek()[1] == "(":
            self.take()
            self.enter()
            inner = self.disjunction()
            self.take(")")
            self.depth -= 1
            return f"({inner})"
        return self.comparison()

    def comparison(self) -> str:
        kind, name, pos = self.take()
        if kind != "word" or name.lower() in ("and", "or", "not", "in", "true", "false"):
            self.fail(pos, f"expected a field name, found {name or 'the end'!r}")
        field = _field(name, self.fields, self.where)
        field_type = self.fields[field]
        op_kind, op, op_pos = self.take()
        if op.lower() == "not":
            self.take("in")
            return f"{field} not in {self.listing(field, field_type)}"
        if op.lower() == "in":
            return f"{field} in {self.listing(field, field_type)}"
        if op_kind != "op" or op not in ("==", "!=", "<", "<=", ">", ">="):
            self.fail(
                op_pos, f"expected a comparison (== != < <= > >= in), found {op or 'the end'!r}"
            )
        return f"{field} {op} {self.literal(field, field_type)}"

    def listing(self, field: str, field_type: str) -> str:
        self.take("[")
        items = [self.literal(field, field_type)]
        while self.peek()[1] == ",":
            self.take()
            items.append(self.literal(field, field_type))
        self.take("]")
        return "[" + ", ".join(items) + "]"

    def literal(self, field: str, field_type: str) -> str:
        kind, text, pos = self.take()
        value: Any
        if kind == "string":
            try:
                value = (
                    json.loads('"' + text[1:-1].replace("\\'", "'").replace('"', '\\"') + '"')
                    if text[0] == "'"
                    else json.loads(text)
                )
            except ValueError:
                self.fail(pos, f"the text {text[:20]!r} has an invalid escape")
        elif kind == "number":
            if len(text.lstrip("-")) > 19 and not any(c in text for c in ".eE"):
                self.fail(pos, "integers in a filter fit in 64 bits")
            value = float(text) if any(c in text for c in ".eE") else int(text)
        elif kind == "word" and text.lower() in ("true", "false"):
            value = text.lower() == "true"
        else:
            self.fail(pos, f"expected a value, found {text or 'the end'!r}")
        return _literal(value, field, field_type, self.where)
