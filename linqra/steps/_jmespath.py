"""JMESPath compilation and evaluation with explicit limits: no expression exhausts the stack or
runs unbounded.

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

Evaluation is bounded too (:func:`search_jmespath`): a short expression can still do
exponential work (22 chained ``[@, @][]`` pipes, under 200 bytes, build a list of four million
items), so an evaluation may take at most ``MAX_JMESPATH_STEPS`` steps (1,000,000, about a
second) and fails with :class:`ExpressionTooExpensive`, naming the expression, past them. A step
is a node of the syntax tree visited (once per element in a projection), an element of a list or
object that flatten, a slice or a function builds or iterates, 64 characters of a string a
function builds, and a value that ``==``, ``!=``, ``contains`` or ``to_string`` walks through
(each element of a nested value, however often the same one is repeated). Values passed through
as they are (a field, ``@``, a literal) cost nothing, whatever their size.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.functions import Functions
from jmespath.visitor import TreeInterpreter

if TYPE_CHECKING:
    from jmespath.visitor import _TreeNode

__all__ = [
    "MAX_JMESPATH_LENGTH",
    "MAX_JMESPATH_NESTING",
    "MAX_JMESPATH_PREFIX_OPERATORS",
    "MAX_JMESPATH_STEPS",
    "MAX_JMESPATH_TREE_DEPTH",
    "ExpressionTooComplex",
    "ExpressionTooExpensive",
    "compile_jmespath",
    "search_jmespath",
]

MAX_JMESPATH_LENGTH = 4_096
MAX_JMESPATH_NESTING = 32
MAX_JMESPATH_PREFIX_OPERATORS = 32
MAX_JMESPATH_TREE_DEPTH = 64
MAX_JMESPATH_STEPS = 1_000_000

_OPEN, _CLOSE = "([{", ")]}"
_QUOTES = {"'", '"', "`"}


class ExpressionTooComplex(JMESPathError):
    """An expression past one of the documented limits."""


class ExpressionTooExpensive(ExpressionTooComplex):
    """An evaluation past ``MAX_JMESPATH_STEPS``."""


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


def search_jmespath(expression: str, data: Any, *, max_steps: int = MAX_JMESPATH_STEPS) -> Any:
    """``expression`` (compiled as :func:`compile_jmespath` does) evaluated over ``data`` in at
    most ``max_steps`` steps; :class:`ExpressionTooExpensive` past them."""
    return _BoundedInterpreter(expression, max_steps).visit(
        compile_jmespath(expression).parsed, data
    )


# nodes whose result is a list built by copying elements (projections pay per element visited)
_COPYING_NODES = frozenset({"flatten", "slice"})
# functions that neither iterate nor build (the others pay for their list and object arguments)
_CONSTANT_FUNCTIONS = frozenset(
    {"abs", "ceil", "floor", "length", "type", "to_array", "to_number", "not_null",
     "starts_with", "ends_with"}
)  # fmt: skip
_WALKING_FUNCTIONS = frozenset({"contains", "to_string"})  # compare or serialise whole values
_CHARS_PER_STEP = 64


class _BoundedInterpreter(TreeInterpreter):
    """jmespath's interpreter, charging every step against a budget (see the module docstring)."""

    def __init__(self, expression: str, max_steps: int) -> None:
        super().__init__()
        self._library = Functions()  # the builtin functions, as the parent's own
        self._methods: dict[str, Any] = {}  # node type → its visit method
        self._expression = expression
        self._max_steps = max_steps
        self._left = max_steps

    def _charge(self, steps: int) -> None:
        self._left -= steps
        if self._left < 0:
            self._exhausted()

    def _exhausted(self) -> None:
        shown = self._expression
        if len(shown) > 120:
            shown = shown[:117] + "..."
        raise ExpressionTooExpensive(
            f"the JMESPath expression {shown!r} is too expensive: evaluating it takes more "
            f"than {self._max_steps:,} steps"
        )

    def _charge_walk(self, value: Any) -> None:
        """Charge every element of ``value``, nested ones included, as a comparison or
        serialisation meets them (a shared element as often as it is repeated)."""
        stack = [value]
        while stack:
            item = stack.pop()
            self._left -= 1
            if self._left < 0:
                self._exhausted()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str):
                self._charge(len(item) // _CHARS_PER_STEP)

    def visit(self, node: _TreeNode, *args: Any, **kwargs: Any) -> Any:
        self._left -= 1  # the hot path: _charge(1) and Visitor.visit inlined
        if self._left < 0:
            self._exhausted()
        kind = node["type"]
        method = self._methods.get(kind)
        if method is None:
            method = self._methods[kind] = getattr(self, f"visit_{kind}", self.default_visit)
        result = method(node, *args, **kwargs)
        if kind in _COPYING_NODES and isinstance(result, list):
            self._charge(len(result))
        return result

    def visit_comparator(self, node: _TreeNode, value: Any) -> Any:
        if node["value"] not in ("eq", "ne"):
            return super().visit_comparator(node, value)
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        if isinstance(left, list | dict) and isinstance(right, list | dict):
            self._charge_walk(left)  # == walks both as deep as they agree
        return self.COMPARATOR_FUNC[node["value"]](left, right)

    def visit_function_expression(self, node: _TreeNode, value: Any) -> Any:
        name = node["value"]
        args = [self.visit(child, value) for child in node["children"]]
        if name in _WALKING_FUNCTIONS:
            for arg in args:
                self._charge_walk(arg)
        elif name not in _CONSTANT_FUNCTIONS:
            self._charge(sum(len(arg) for arg in args if isinstance(arg, list | dict)))
        result = self._library.call_function(name, args)
        if any(result is arg for arg in args):
            return result  # passed through, not built
        if isinstance(result, list | dict):
            self._charge(len(result))
        elif isinstance(result, str):
            self._charge(len(result) // _CHARS_PER_STEP)
        return result
