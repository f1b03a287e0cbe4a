"""One validation style for every way in: a request model (pydantic) checks the body, and its
errors become our 4xx :class:`~linqra.errors.ValidationError` naming the field.

The same model serves the HTTP route (its schema in ``/openapi.json``), the service the route
calls, workflow steps and the CLI, which all call the service.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from linqra.errors import ValidationError

__all__ = ["format_pydantic_error", "parse_model"]

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
