"""The one table from exceptions to HTTP responses: ``{"error": {code, message, field?, request_id}}``.

Every request gets a request id (a valid ``X-Request-Id`` header it came with, else a fresh
uuid4 hex), returned in the ``X-Request-Id`` response header and in every error body, so a
user's report can be matched with the log. A 503 carries ``Retry-After`` (whole seconds, from
the error's ``retry_after``), and so does a 429 that knows when to retry.

An unexpected exception becomes a 500 and ONE log line at ERROR on the ``linqra.errors``
logger (request id, method, path, exception class); its traceback is logged on the same
logger at DEBUG only, which :func:`configure_error_log` sends to a file. The exception is
handled by :class:`ErrorBoundary` (a pure ASGI middleware; the gateway's
:class:`deployments.edge.Edge` does the same) and not re-raised, so neither Starlette nor the
server prints the traceback again.
"""

from __future__ import annotations

import logging
import logging.handlers
import math
import re
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from linqra.errors import LinqraError
from linqra.validation import error_details, summary

__all__ = [
    "REQUEST_ID_HEADER",
    "ErrorBoundary",
    "add_request_id",
    "configure_error_log",
    "error_body",
    "install_error_handlers",
    "internal_response",
    "request_id",
    "retry_after_header",
    "unwrap",
]

log = logging.getLogger("linqra.errors")

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_SCOPE_KEY = "request_id"
_HANDLER_NAME = "linqra-error-log"


def request_id(scope: Scope) -> str:
    """This request's id (created on first use and kept in ``scope["state"]``)."""
    state = scope.setdefault("state", {})
    known = state.get(_SCOPE_KEY)
    if isinstance(known, str):
        return known
    rid = uuid.uuid4().hex
    for name, value in scope.get("headers") or ():
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.match(text):
                rid = text
            break
    state[_SCOPE_KEY] = rid
    return rid


def add_request_id(headers: list[tuple[bytes, bytes]], rid: bytes) -> bool:
    """Append ``x-request-id: rid`` to raw response ``headers`` unless one is there (whatever
    its case); whether it was added."""
    for name, _ in headers:
        if name.lower() == b"x-request-id":
            return False
    headers.append((b"x-request-id", rid))
    return True


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


def retry_after_header(err: BaseException, status: int) -> dict[str, str]:
    """``{"Retry-After": "<seconds>"}`` for a 503, or a 429 with a ``retry_after``; else ``{}``."""
    if status not in (429, 503):
        return {}
    value = getattr(err, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        if status == 429:
            return {}
        value = 1.0
    return {"Retry-After": str(max(1, math.ceil(min(value, 86_400))))}


def _linqra_response(err: LinqraError, scope: Scope) -> JSONResponse:
    rid = request_id(scope)
    if err.status >= 500:
        log.warning(
            "request %s: %s %s answered %d %s",
            rid,
            scope.get("method", ""),
            scope.get("path", ""),
            err.status,
            err.code,
        )
    body = {"error": {**err.to_dict(), "request_id": rid}}
    headers = {**retry_after_header(err, err.status), REQUEST_ID_HEADER: rid}
    headers.update(getattr(err, "headers", None) or {})  # e.g. a 429's X-RateLimit-*
    if err.status == 401:  # RFC 6750: say how to authenticate
        headers["WWW-Authenticate"] = (
            'Bearer realm="linqra", error="invalid_token"'
            if err.code == "invalid_token"
            else 'Bearer realm="linqra"'
        )
    return JSONResponse(body, status_code=err.status, headers=headers)


def internal_response(exc: BaseException, scope: Scope) -> JSONResponse:
    """The JSON answer for ``exc`` raised while serving ``scope`` (a 500 unless it is a
    :class:`~linqra.errors.LinqraError`), logged as the module docstring says."""
    err = unwrap(exc)
    if isinstance(err, LinqraError):
        return _linqra_response(err, scope)
    rid = request_id(scope)
    method, path = scope.get("method", ""), scope.get("path", "")
    log.error("request %s: %s %s failed with %s", rid, method, path, type(err).__name__)
    log.debug("request %s: %s %s traceback", rid, method, path, exc_info=err)
    return JSONResponse(
        error_body("internal", "internal error; see the gateway log", request_id=rid),
        status_code=500,
        headers={REQUEST_ID_HEADER: rid},
    )


class ErrorBoundary:
    """Gives every response an ``X-Request-Id`` and turns any exception into a JSON error.

    Unlike Starlette's ``ServerErrorMiddleware`` it does not re-raise, so the server does not
    print the traceback (see the module docstring for where it goes).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope).encode()
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers") or [])
                if add_request_id(headers, rid):
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            response = internal_response(exc, scope)
            if started:  # the status is sent; all we can do is log and close
                return
            await response(scope, receive, send)


def configure_error_log(path: Path, *, max_bytes: int = 10 * 1024 * 1024) -> None:
    """Send ``linqra.errors`` in full (tracebacks included) to ``path``, one line to stderr.

    Idempotent. Until it is called, the one-line ERROR records propagate to the root
    logger and the DEBUG tracebacks are dropped (unless the root logger is at DEBUG).
    """
    if any(h.get_name() == _HANDLER_NAME for h in log.handlers):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=3, encoding="utf-8"
    )
    to_file.setLevel(logging.DEBUG)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setLevel(logging.WARNING)
    to_stderr.setFormatter(logging.Formatter("%(levelname)s linqra: %(message)s"))
    for handler in (to_file, to_stderr):
        handler.set_name(_HANDLER_NAME)
        log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False


def _loc(loc: tuple[Any, ...]) -> str:
    # FastAPI's first part says where the value was (a body field called "query" stays)
    where = loc[:1] in (("body",), ("query",), ("path",), ("header",))
    parts = list(loc[1:] if where and len(loc) > 1 else loc)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_OBJECT_TYPES = frozenset({"dict_type", "model_type", "model_attributes_type"})
"""pydantic's error types for "not an object" where a model or a mapping is read."""


def _json_kind(value: Any) -> str:
    """A JSON value's kind, as a client would name it."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


def install_error_handlers(app: FastAPI, *, boundary: bool = True) -> None:
    """The exception handlers and (unless ``boundary`` is false: the gateway's one middleware,
    :class:`deployments.edge.Edge`, does its work) the :class:`ErrorBoundary` middleware."""
    if boundary:
        app.add_middleware(ErrorBoundary)

    @app.exception_handler(LinqraError)
    async def _linqra(request: Request, exc: LinqraError) -> JSONResponse:
        err = unwrap(exc)
        return _linqra_response(err if isinstance(err, LinqraError) else exc, request.scope)

    def _not_json(request: Request, errors: Sequence[Any]) -> bool:
        """Whether the whole body was refused and it was not sent as JSON."""
        sent = request.headers.get("content-type", "")
        whole = any(tuple(error.get("loc", ())) == ("body",) for error in errors)
        return whole and bool(sent) and "json" not in sent.lower()

    def _not_object(errors: Sequence[Any]) -> str | None:
        """What JSON value the whole body was when an object was read (``None`` when that was
        not the problem): pydantic says "a valid dictionary or object to extract fields
        from", which names Python's type, not the JSON the client sent."""
        for error in errors:
            if tuple(error.get("loc", ())) == ("body",) and error.get("type") in _OBJECT_TYPES:
                return _json_kind(error.get("input"))
        return None

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        details = error_details(errors, _loc)
        first = (
            details[0] if details else {"field": "(body)", "message": "invalid request", "type": ""}
        )
        message = summary(details)[0] if details else "(body): invalid request"
        code = "invalid_json" if first["type"] == "json_invalid" else "invalid_request"
        if first["type"] == "json_invalid":
            first["message"] = "request body is not valid JSON: " + str(
                errors[0].get("ctx", {}).get("error", "")
            )
            message = f"{first['field']}: {first['message']}"
        elif _not_json(request, errors):  # a form or XML sent where JSON is read
            sent = request.headers.get("content-type", "").split(";")[0]
            first = {**first, "field": "body", "type": "content_type"}
            first["message"] = f"send the body as JSON (Content-Type: application/json), not {sent}"
            message = f"body: {first['message']}"
        elif (kind := _not_object(errors)) is not None:  # JSON, but `[1]` where `{…}` is read
            first = {**first, "field": "body", "type": "object_type"}
            first["message"] = f"the body must be a JSON object ({{...}}), not {kind}"
            message = f"body: {first['message']}"
            details = [first]
        rid = request_id(request.scope)
        return JSONResponse(
            error_body(
                code,
                message,
                first["field"],
                details=details,
                request_id=rid,
            ),
            status_code=400,
            headers={REQUEST_ID_HEADER: rid},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        # Starlette's own 400s are about the body it could not read (a multipart body
        # without a boundary, too many files or fields)
        where = "body" if exc.status_code == 400 else None
        rid = request_id(request.scope)
        return JSONResponse(
            error_body(code, str(exc.detail), where, request_id=rid),
            status_code=exc.status_code,
            headers={**(exc.headers or {}), REQUEST_ID_HEADER: rid},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # the last resort behind ErrorBoundary (Starlette re-raises after this one)
        return internal_response(exc, request.scope)
