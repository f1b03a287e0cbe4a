"""The one table from exceptions to HTTP responses: ``{"error": {code, message, field?}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from linqra.errors import LinqraError

log = logging.getLogger(__name__)


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return {"error": body}


def unwrap(exc: BaseException) -> BaseException:
    """The original exception inside a Ray task error (Ray wraps what actors raise)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")] or list(loc)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LinqraError)
    async def _linqra(_: Request, exc: LinqraError) -> JSONResponse:
        err = unwrap(exc)
        if not isinstance(err, LinqraError):
            err = exc
        return JSONResponse({"error": err.to_dict()}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        details = [
            {
                "field": _loc(tuple(e.get("loc", ()))) or "(body)",
                "message": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in errors
        ]
        first = (
            details[0] if details else {"field": "(body)", "message": "invalid request", "type": ""}
        )
        code = "invalid_json" if first["type"] == "json_invalid" else "invalid_request"
        if first["type"] == "json_invalid":
            first["message"] = "request body is not valid JSON: " + str(
                errors[0].get("ctx", {}).get("error", "")
            )
        return JSONResponse(
            error_body(
                code, f"{first['field']}: {first['message']}", first["field"], details=details
            ),
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        err = unwrap(exc)
        if isinstance(err, LinqraError):
            return JSONResponse({"error": err.to_dict()}, status_code=err.status)
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            error_body("internal", "internal error; see the gateway log"), status_code=500
        )
