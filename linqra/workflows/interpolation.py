"""``{{…}}`` interpolation, as Linqra workflows write it.

* ``{{params.topic}}`` — a request parameter;
* ``{{step1.result.fullName}}``, ``{{step3.result.choices[0].message.content}}`` —
  a path into an earlier step's result, with list indexes;
* ``{{step2.result.id??step1.result.oldId}}``, ``{{step5.result.changed??false}}`` —
  ``??`` falls back to another path or to a literal (JSON: ``false``, ``0``,
  ``null``, ``"text"``; or ``'text'``).

A value that is exactly one expression keeps its type (object, list, number);
inside longer text a value is embedded as text (strings as they are, everything
else as compact JSON). A path that does not resolve and has no fallback raises
:class:`MissingReference`, naming the path.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from linqra.errors import ValidationError

__all__ = [
    "MAX_TEMPLATE_DEPTH",
    "MissingReference",
    "Scope",
    "parse_expression",
    "references",
    "render",
    "render_text",
]

MAX_TEMPLATE_DEPTH = 32
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_PATH = re.compile(r"^(?P<root>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>(\.[A-Za-z_$][\w$-]*|\[\d+\])*)$")
_PART = re.compile(r"\.([A-Za-z_$][\w$-]*)|\[(\d+)\]")
_STEP_ROOT = re.compile(r"^step(\d+)$")
_ROOTS = ("params", "stepN")


class MissingReference(LookupError):
    """A path that does not resolve; ``path`` is the text written between the braces."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{{{{{path}}}}}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (MissingReference, (self.path, self.reason))


@dataclass(frozen=True, slots=True)
class Ref:
    """A path: ``root`` is ``params`` or ``stepN``; ``parts`` are keys and indexes."""

    text: str
    root: str
    step: int | None
    parts: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


Alternative = Ref | Literal


@dataclass(frozen=True, slots=True)
class Scope:
    """What references resolve against: the request params and finished step results."""

    params: Mapping[str, Any]
    results: Mapping[int, Any]

    def lookup(self, ref: Ref) -> Any:
        if ref.root == "params":
            current: Any = self.params
            label = "params"
            parts = ref.parts
        else:
            assert ref.step is not None
            if ref.step not in self.results:
                raise MissingReference(
                    ref.text, f"step{ref.step} has no result (not run, skipped or failed)"
                )
            if not ref.parts or ref.parts[0] != "result":
                raise MissingReference(ref.text, f"write step{ref.step}.result…")
            current = self.results[ref.step]
            label = f"step{ref.step}.result"
            parts = ref.parts[1:]
        for part in parts:
            if isinstance(part, int):
                if not isinstance(current, list) or part >= len(current):
                    raise MissingReference(ref.text, f"{label} has no index [{part}]")
                current = current[part]
                label += f"[{part}]"
            else:
                if not isinstance(current, Mapping) or part not in current:
                    raise MissingReference(ref.text, f"{label} has no key {part!r}")
                current = current[part]
                label += f".{part}"
        return current


def parse_expression(text: str) -> tuple[Alternative, ...]:
    """Parse the inside of ``{{…}}`` into alternatives; raise ``ValueError`` if malformed."""
    alternatives: list[Alternative] = []
    pieces = [p.strip() for p in text.split("??")]
    for index, piece in enumerate(pieces):
        if not piece:
            raise ValueError(f"empty expression in {{{{{text}}}}}")
        match = _PATH.fullmatch(piece)
        if match and piece not in ("true", "false", "null"):
            alternatives.append(_ref(piece, match))
            continue
        if index == 0:
            raise ValueError(
                f"{{{{{text}}}}} must start with a path such as params.x or step1.result.y"
            )
        alternatives.append(Literal(_literal(piece)))
    return tuple(alternatives)


def _ref(piece: str, match: re.Match[str]) -> Ref:
    root = match["root"]
    step_match = _STEP_ROOT.fullmatch(root)
    if root != "params" and not step_match:
        raise ValueError(f"unknown reference {piece!r}: paths start with params. or stepN.")
    parts: list[str | int] = []
    for key, idx in _PART.findall(match["rest"]):
        parts.append(int(idx) if idx else key)
    step = int(step_match[1]) if step_match else None
    if step is not None and (not parts or parts[0] != "result"):
        raise ValueError(f"unknown reference {piece!r}: write step{step}.result…")
    return Ref(piece, "step" if step is not None else "params", step, tuple(parts))


def _literal(piece: str) -> Any:
    if len(piece) >= 2 and piece[0] == piece[-1] == "'":
        return piece[1:-1]
    if _bracket_depth(piece) > MAX_TEMPLATE_DEPTH:
        raise ValueError(f"a fallback value is nested deeper than {MAX_TEMPLATE_DEPTH} levels")
    try:
        value = json.loads(piece, parse_constant=_not_json)
    except ValueError:
        return piece  # bare text after ?? is a string fallback (NaN, Infinity included)
    except RecursionError:
        raise ValueError("a fallback value is nested too deeply") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"fallback {piece[:24]!r} is not a finite number")
    return value


def _not_json(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def _bracket_depth(text: str) -> int:
    """Nesting of ``[``/``{`` outside double-quoted strings, counted without recursion."""
    depth = deepest = 0
    quoted = escaped = False
    for ch in text:
        if quoted:
            escaped, quoted = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            quoted = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def evaluate(alternatives: tuple[Alternative, ...], scope: Scope) -> Any:
    """The first alternative that resolves; a literal always does."""
    last: MissingReference | None = None
    for alt in alternatives:
        if isinstance(alt, Literal):
            return alt.value
        try:
            return scope.lookup(alt)
        except MissingReference as exc:
            last = exc
    assert last is not None
    raise last


def references(value: Any, *, depth: int = 0) -> set[int]:
    """Step numbers that ``value`` (any JSON) refers to; raises ``ValueError`` if malformed."""
    if depth > MAX_TEMPLATE_DEPTH:
        raise ValueError(f"nested deeper than {MAX_TEMPLATE_DEPTH} levels")
    found: set[int] = set()
    if isinstance(value, str):
        for match in PLACEHOLDER.finditer(value):
            for alt in parse_expression(match[1]):
                if isinstance(alt, Ref) and alt.step is not None:
                    found.add(alt.step)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found |= references(key, depth=depth + 1)
            found |= references(item, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            found |= references(item, depth=depth + 1)
    return found


def render(value: Any, scope: Scope, *, encode: Callable[[str], str] | None = None) -> Any:
    """Interpolate every string inside ``value`` (any JSON), keeping whole-value types."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole and value.count("{{") == 1:
            result = evaluate(parse_expression(whole[1]), scope)
            return encode(_as_text(result)) if encode else result
        return render_text(value, scope, encode=encode)
    if isinstance(value, Mapping):
        return {
            render_text(k, scope) if isinstance(k, str) else k: render(v, scope, encode=encode)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [render(v, scope, encode=encode) for v in value]
    return value


def render_text(text: str, scope: Scope, *, encode: Callable[[str], str] | None = None) -> str:
    """Interpolate ``text``, embedding every value as text (URL-encoded with ``encode``)."""

    def substitute(match: re.Match[str]) -> str:
        piece = _as_text(evaluate(parse_expression(match[1]), scope))
        return encode(piece) if encode else piece

    return PLACEHOLDER.sub(substitute, text)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def check_templates(value: Any, field: str) -> set[int]:
    """Validate templates under ``field``; the referenced step numbers."""
    try:
        return references(value)
    except ValueError as exc:
        raise ValidationError(str(exc), field=field) from None
