"""One validation style for every way in: a request model (pydantic) checks the body, and its
errors become our 4xx :class:`~linqra.errors.ValidationError` naming the field.

The same model serves the HTTP route (its schema in ``/openapi.json``), the service the route
calls, workflow steps and the CLI, which all call the service.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import pydantic

from linqra.errors import LinqraError, ValidationError

__all__ = ["fields_moved", "format_pydantic_error", "parse_model"]

M = TypeVar("M", bound=pydantic.BaseModel)


def format_pydantic_error(exc: pydantic.ValidationError, prefix: str = "") -> ValidationError:
    """Our 4xx error from pydantic's: first problem in the message, all in ``details``."""
    details = []
    for err in exc.errors(include_url=False, include_input=False):
        field = prefix + _loc(err["loc"])
        details.append({"field": field or "(body)", "message": err["msg"], "type": err["type"]})
    first = details[0]
    extra = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return ValidationError(
        f"{first['field']}: {first['message']}{extra}", field=first["field"], details=details
    )


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
            if isinstance(field, str) and new is not None:
                renamed[field] = new
        if renamed:
            exc.field = renamed.get(exc.field, exc.field) if exc.field is not None else None
            if exc.details:
                exc.details = [
                    {**d, "field": renamed.get(str(d.get("field")), d.get("field"))}
                    for d in exc.details
                ]
            message = exc.message
            for old in sorted(renamed, key=len, reverse=True):
                message = re.sub(rf"(?<![\w.\[]){re.escape(old)}(?!\w)", renamed[old], message)
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


def _loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for a dict key: the key itself names the field
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
