"""One validation style for every way in: a request model (pydantic) checks the body, and its
errors become our 4xx :class:`~linqra.errors.ValidationError` naming the field.

The same model serves the HTTP route (its schema in ``/openapi.json``), the service the route
calls, workflow steps and the CLI, which all call the service.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import pydantic

from linqra.errors import LinqraError, ValidationError

__all__ = ["error_details", "fields_moved", "format_pydantic_error", "parse_model", "summary"]

M = TypeVar("M", bound=pydantic.BaseModel)


MAX_ERROR_DETAILS = 50
"""The most problems of one request that are named in ``details`` (a body of a million bad
values makes a million of pydantic's errors; naming each field the user's way compares their
paths, which a 400 must not spend seconds of the event loop on)."""


def format_pydantic_error(exc: pydantic.ValidationError, prefix: str = "") -> ValidationError:
    """Our 4xx error from pydantic's: first problem in the message (a misspelt required field
    before the rest, :func:`_typos_first`), the first :data:`MAX_ERROR_DETAILS` in ``details``."""
    errors = exc.errors(include_url=False)
    details = _typos_first(error_details(errors, lambda loc: prefix + _loc(loc)))
    message, rest = summary(details)
    if len(errors) > MAX_ERROR_DETAILS:  # not counted: that is the work the cap saves
        extra = f" (and more: the first {MAX_ERROR_DETAILS} problems are in details)"
    else:
        extra = f" (and {rest} more)" if rest else ""
    return ValidationError(message + extra, field=details[0]["field"], details=details)


def error_details(
    errors: Sequence[Mapping[str, Any]], name: Callable[[tuple[Any, ...]], str]
) -> list[dict[str, Any]]:
    """``[{field, message, type}]`` for the first :data:`MAX_ERROR_DETAILS` of pydantic's
    ``errors``, each field named by ``name`` from its ``loc`` as the user's request has it
    (:func:`_user_locs`)."""
    errors = errors[:MAX_ERROR_DETAILS]
    return [
        {"field": name(loc) or "(body)", "message": e.get("msg", ""), "type": e.get("type", "")}
        for e, loc in zip(errors, _user_locs(errors), strict=True)
    ]


def _typos_first(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An unknown field that is the nearest miss of a required one missing beside it (``taget``
    for ``target``) first, saying so: the missing field is the typo's consequence, and a message
    that led with it (``steps[0].target: Field required``) pointed away from the typo. One typo
    a missing field (the closest); a misspelt optional field has no missing one to match."""
    extras: dict[str, dict[str, dict[str, Any]]] = {}  # parent → name → its detail
    for d in details:
        if d["type"] == "extra_forbidden":
            parent, _, name = str(d["field"]).rpartition(".")
            extras.setdefault(parent, {})[name] = d
    typos: list[dict[str, Any]] = []
    for d in details:
        if d["type"] != "missing":
            continue
        parent, _, name = str(d["field"]).rpartition(".")
        unknown = extras.get(parent, {})
        close = difflib.get_close_matches(name, list(unknown), n=1, cutoff=0.75)
        if close:
            typo = unknown.pop(close[0])
            typo["message"] = f"{typo['message']}; did you mean {name!r}?"
            typos.append(typo)
    first = {id(d) for d in typos}
    return typos + [d for d in details if id(d) not in first]


def summary(details: Sequence[Mapping[str, Any]]) -> tuple[str, int]:
    """``"field: message"`` for the first field at fault — a union's branches, which are now one
    field, in one sentence (``filter: Input should be a valid string or a valid dictionary``) —
    and how many other problems ``details`` has."""
    field = details[0]["field"]
    same = [str(d["message"]) for d in details if d["field"] == field]
    lead = "Input should be "
    if len(same) > 1 and all(m.startswith(lead) for m in same):
        message = lead + " or ".join(dict.fromkeys(m.removeprefix(lead) for m in same))
    else:
        message = " or ".join(dict.fromkeys(same))
    return f"{field}: {message}", len(details) - len(same)


def parse_model(model: type[M], data: Any, prefix: str = "") -> M:
    """``data`` (a JSON object) as ``model``, or a 4xx naming the first field at fault."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise ValidationError("the body is a JSON object", field=prefix.rstrip(".") or "body")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise format_pydantic_error(exc, prefix) from None


@contextlib.contextmanager
def fields_moved(moves: Mapping[str, str]) -> Iterator[None]:
    """Re-raise a :class:`~linqra.errors.LinqraError` about a field of what the user's request
    was compiled into under the field the request itself has: a field equal to, or under, a key
    of ``moves`` is renamed to its value (``{"config.steps[0].params.expression":
    "config.expression"}``; ``{"query.workflow.steps": "query.workflow"}`` makes
    ``query.workflow.steps[0].action`` ``query.workflow[0].action``), in ``field``, in
    ``details`` and where the message names it; a message that names none of them is prefixed
    with the new ``field``."""
    try:
        yield
    except LinqraError as exc:
        renamed: dict[str, str] = {}
        for entry in [{"field": exc.field}, *(exc.details or [])]:
            field = entry.get("field")
            new = _moved(field, moves) if isinstance(field, str) else None
            if isinstance(field, str) and new is not None and new != field:
                renamed[field] = new
        if renamed:
            exc.field = renamed.get(exc.field, exc.field) if exc.field is not None else None
            if exc.details:
                exc.details = [
                    {**d, "field": renamed.get(str(d.get("field")), d.get("field"))}
                    for d in exc.details
                ]
            message = exc.message
            for old in sorted(renamed, key=len, reverse=True):  # (new names as text: \ escaped)
                pattern = re.compile(rf"(?<![\w.\[]){re.escape(old)}(?!\w)")
                message = pattern.sub(renamed[old].replace("\\", "\\\\"), message)
            if message == exc.message and exc.field is not None:
                message = f"{exc.field}: {message}"  # it said "action …"; which one?
            exc.message = message
            exc.args = (message,)
        raise


def _moved(field: str, moves: Mapping[str, str]) -> str | None:
    for old, new in moves.items():
        if field == old or field.startswith((old + ".", old + "[")):
            return new + field[len(old) :]
    return None


_BRANCH_LABEL = re.compile(
    r"(function-(after|before|wrap|plain)|dict|list|tuple|set|frozenset|literal|is-instance"
    r"|is-subclass|json-or-python|lax-or-strict|nullable|default|chain|union|tagged-union"
    r"|generator|enum|constrained-[a-z]+)\[.*\]",
    re.DOTALL,
)
"""pydantic's label for a union branch or validator that has parameters (``dict[str,any]``,
``function-after[check(), str]``): brackets, which no field of ours has."""
_BRANCH_NAMES = frozenset(
    {"str", "int", "float", "bool", "bytes", "none", "decimal", "date", "datetime", "time",
     "timedelta", "uuid", "url", "any", "constrained-str", "constrained-int",
     "constrained-float", "constrained-bytes", "constrained-decimal"}
)  # fmt: skip
"""pydantic's label for a plain union branch (``str | dict`` fails as ``filter.str`` and
``filter.dict[str,any]``): a word a field could also be called, so taken for a label only
beside another branch of the same union (:func:`_user_locs`)."""


def _user_locs(errors: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Each error's ``loc`` without pydantic's union-branch and validator labels and its
    ``[key]`` marker for a dict key (the key itself names the field). A bracketed label always
    goes; a plain one (``str``) only beside the same union's other branch — another error with
    the same ``loc`` up to there and, there, a bracketed label or a plain one of the same input —
    so that fields called ``url`` and ``date`` keep their names. The first part (``body``, or a
    model's field) always stays."""
    locs = [tuple(e.get("loc", ())) for e in errors]

    def sibling(m: int, n: int, i: int) -> bool:  # the same union's other branch
        part = locs[m][i]
        if not isinstance(part, str):
            return False
        if _BRANCH_LABEL.fullmatch(part):
            return True
        return part in _BRANCH_NAMES and _same(errors[m].get("input"), errors[n].get("input"))

    def branch(n: int, i: int) -> bool:
        part = locs[n][i]
        if not isinstance(part, str):
            return False
        if part == "[key]" or _BRANCH_LABEL.fullmatch(part):
            return True
        return part in _BRANCH_NAMES and any(
            m != n
            and len(other) > i
            and other[:i] == locs[n][:i]
            and other[i] != part
            and sibling(m, n, i)
            for m, other in enumerate(locs)
        )

    return [
        loc[:1] + tuple(p for i, p in enumerate(loc[1:], 1) if not branch(n, i))
        for n, loc in enumerate(locs)
    ]


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # an input whose == fails is not the same input
        return False


def _loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
