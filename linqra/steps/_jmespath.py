"""JMESPath compilation with explicit limits, so no expression can exhaust the stack.

``jmespath`` parses with recursive descent (and parses backtick literals with ``json``) and
evaluates by walking the syntax tree recursively: ``((((…a…))))``, ``!!!!…a``, a deeply nested
`` `[[[…]]]` `` literal or 500 chained pipes end in ``RecursionError``. Before compiling, an
expression is checked, without recursion, against

* ``MAX_JMESPATH_LENGTH`` characters (4,096);
* ``MAX_JMESPATH_NESTING`` levels of ``(``/``[``/``{`` (32), also inside a literal;
* ``MAX_JMESPATH_PREFIX_OPERATORS`` ``!`` and ``&`` operators in all (32);

and after compiling its syntax tree may be at most ``MAX_JMESPATH_TREE_DEPTH`` deep (64).
Refusals are :class:`ExpressionTooComplex`, a ``JMESPathError`` as the library's own errors
are, so callers report both the same way.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

__all__ = [
    "MAX_JMESPATH_LENGTH",
    "MAX_JMESPATH_NESTING",
    "MAX_JMESPATH_PREFIX_OPERATORS",
    "MAX_JMESPATH_TREE_DEPTH",
    "ExpressionTooComplex",
    "compile_jmespath",
]

MAX_JMESPATH_LENGTH = 4_096
MAX_JMESPATH_NESTING = 32
MAX_JMESPATH_PREFIX_OPERATORS = 32
MAX_JMESPATH_TREE_DEPTH = 64

_OPEN, _CLOSE = "([{", ")]}"
_QUOTES = {"'", '"', "`"}


class ExpressionTooComplex(JMESPathError):
    """An expression past one of the documented limits."""


def _check_text(expression: str) -> None:
    if len(expression) > MAX_JMESPATH_LENGTH:
        raise ExpressionTooComplex(
            f"a JMESPath expression is at most {MAX_JMESPATH_LENGTH} characters"
        )
    depth = deepest = prefix = 0
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(expression):
        if quote is not None:  # inside '…', "…" or `…`: only a literal's JSON nests
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            elif quote == "`" and ch in "[{":
                depth += 1
            elif quote == "`" and ch in "]}":
                depth -= 1
        elif ch in _QUOTES:
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        elif _is_prefix_operator(expression, i):
            prefix += 1
        deepest = max(deepest, depth)
    if deepest > MAX_JMESPATH_NESTING:
        raise ExpressionTooComplex(
            f"a JMESPath expression nests at most {MAX_JMESPATH_NESTING} levels of brackets"
        )
    if prefix > MAX_JMESPATH_PREFIX_OPERATORS:
        raise ExpressionTooComplex(
            f"a JMESPath expression has at most {MAX_JMESPATH_PREFIX_OPERATORS} ! and & operators"
        )


def _is_prefix_operator(text: str, i: int) -> bool:
    """``!`` that is not ``!=``, or ``&`` that is not part of ``&&``."""
    if text[i] == "!":
        return text[i + 1 : i + 2] != "="
    return text[i] == "&" and "&" not in (text[i - 1 : i], text[i + 1 : i + 2])


def _tree_depth(parsed: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(parsed, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for child in node.get("children") or ():
            if isinstance(child, dict):
                stack.append((child, depth + 1))
    return deepest


@lru_cache(maxsize=1024)
def compile_jmespath(expression: str) -> Any:
    """The compiled expression; :class:`JMESPathError` if it is invalid or past a limit."""
    _check_text(expression)
    try:
        compiled = jmespath.compile(expression)
    except RecursionError:  # the checks above should make this unreachable
        raise ExpressionTooComplex("the JMESPath expression is nested too deeply") from None
    if _tree_depth(compiled.parsed) > MAX_JMESPATH_TREE_DEPTH:
        raise ExpressionTooComplex(
            f"a JMESPath expression is at most {MAX_JMESPATH_TREE_DEPTH} operations deep "
            "(e.g. chained pipes)"
        )
    return compiled
