"""Request limits enforced before routing: body size (413) and one strict JSON decoding (400).

Every request body except a ``multipart/form-data`` upload to the documents route is checked
here, whatever its content type is spelled (``application/json``, ``Application/JSON;
charset=utf-8``, ``application/x-json``, ``text/plain``, ``multipart/form-data`` on another
route, or none), because routes parse bodies as JSON whatever the header says (a webhook's body,
FastAPI's body without a content type, a document upload whose type merely contains ``json``).
A body is refused when it is

* bigger than ``max_body_bytes`` (413 ``payload_too_large``; document uploads to
  ``/v1/knowledge/collections/{id}/documents`` have ``max_upload_bytes`` instead);
* nested deeper than ``max_json_depth`` + 2 levels (400 ``too_deep``; the envelope of a
  workflow, ``{"steps": [{…}]}``, takes two), counted without parsing and without recursion;
* JSON that Python would accept but nothing downstream can store or compute with
  (400 ``invalid_json``, ``field`` the JSON path of the value, e.g. ``body.params.x``):
  ``NaN``, ``Infinity``, ``-Infinity``, numbers that overflow to infinity (``1e400``),
  integers outside the signed 64-bit range (what MongoDB and SQLite store), and strings
  with unpaired UTF-16 surrogates (``"\\ud800"``, which cannot be encoded as UTF-8);
* not JSON at all when its content type says JSON, or it has none (400 ``invalid_json``).
  A body of another content type that is not JSON is passed on for its route to judge.

An accepted body is passed on byte for byte, so FastAPI (and a webhook's signature check)
sees exactly what the client sent. :func:`loads_strict` is the same decoding for code that
parses JSON text itself (form fields, stored text).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.errors import REQUEST_ID_HEADER, error_body, request_id
from linqra.errors import ValidationError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_JSON_DEPTH",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "MAX_JSON_INT",
    "UPLOAD_ENVELOPE_BYTES",
    "InvalidJson",
    "JsonTooDeep",
    "NotJson",
    "RequestLimits",
    "json_depth",
    "loads_strict",
]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_JSON_DEPTH = 32
UPLOAD_ENVELOPE_BYTES = 64 * 1024
"""Room for the multipart framing around an upload of ``knowledge.max_upload_bytes``."""
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024 + UPLOAD_ENVELOPE_BYTES
ENVELOPE_LEVELS = 2
MAX_JSON_INT = 2**63 - 1

_UPLOAD = re.compile(r"^/v1/knowledge/collections/[^/]+/documents/?$")
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_KEEP = bytes(range(256)).translate(None, b"[]{}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_IDENTIFIER = re.compile(r"^[A-Za-z_$][\w$-]*$")


class InvalidJson(ValidationError):
    """A body that is not JSON, or JSON with a value nothing downstream can hold."""

    code = "invalid_json"


class NotJson(InvalidJson):
    """A body that does not parse as JSON at all."""


class JsonTooDeep(ValidationError):
    code = "too_deep"


def json_depth(body: bytes | str) -> int:
    """Maximum nesting of ``[``/``{`` in a JSON text (strings ignored); cheap, no parsing."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    brackets = _STRINGS.sub(b"", data).translate(None, _KEEP)
    depth = deepest = 0
    for ch in brackets:
        if ch in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class _Refused:
    """A number the decoder met and refused; the walk below finds where it was."""

    __slots__ = ("reason", "text")

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason


def loads_strict(
    data: bytes | str,
    *,
    max_depth: int = DEFAULT_MAX_JSON_DEPTH + ENVELOPE_LEVELS,
    where: str = "body",
) -> Any:
    """``json.loads`` that accepts only what can be stored: see the module docstring.

    Raises :class:`JsonTooDeep` or :class:`InvalidJson`, whose ``field`` is the JSON path
    of the bad value under ``where``.
    """
    if json_depth(data) > max_depth:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels", field=where)
    refused = False

    def constant(text: str) -> _Refused:
        nonlocal refused
        refused = True
        return _Refused(text, "is not a number JSON allows (finite numbers only)")

    def real(text: str) -> float | _Refused:
        nonlocal refused
        value = float(text)
        if math.isfinite(value):
            return value
        refused = True
        return _Refused(text, "is out of range (finite numbers only)")

    def integer(text: str) -> int | _Refused:
        nonlocal refused
        if len(text.lstrip("-")) <= 19:
            value = int(text)
            if -MAX_JSON_INT - 1 <= value <= MAX_JSON_INT:
                return value
        refused = True
        return _Refused(text, "is out of range (integers are limited to 64 bits)")

    try:
        value = json.loads(data, parse_constant=constant, parse_float=real, parse_int=integer)
    except RecursionError:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels", field=where) from None
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8/16/32
        raise NotJson(f"{where} is not valid JSON: {exc}", field=where) from None
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if refused or _SURROGATE_ESCAPE.search(raw):
        _check(value, where)
    return value


def _check(value: Any, where: str) -> None:
    """Raise for the first refused number or unpaired surrogate, in document order."""
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, _Refused):
            shown = item.text if len(item.text) <= 24 else item.text[:20] + "…"
            raise InvalidJson(f"{path}: {shown} {item.reason}", field=path)
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise InvalidJson(f"{path}: text with an unpaired UTF-16 surrogate", field=path)
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if _SURROGATE.search(key):
                    raise InvalidJson(
                        f"{path}: a key with an unpaired UTF-16 surrogate", field=path
                    )
                step = f".{key}" if _IDENTIFIER.match(key) else f"[{json.dumps(key)}]"
                stack.append((path + step, child))
        elif isinstance(item, list):
            for index in range(len(item) - 1, -1, -1):
                stack.append((f"{path}[{index}]", item[index]))


def _media_type(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return None


def _says_json(media: str | None) -> bool:
    return not media or media.endswith(("/json", "+json", "/x-json"))


class RequestLimits:
    """The pure ASGI middleware described in the module docstring.

    The limits are the settings ``http.max_body_bytes``, ``http.max_json_depth`` and
    ``knowledge.max_upload_bytes`` (plus room for the multipart envelope), passed in by
    whoever builds the app.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_depth = max_json_depth + ENVELOPE_LEVELS
        self.max_upload = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replay = await self.admit(scope, receive, send)
        if replay is not None:
            await self.app(scope, replay, send)

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Read and check the body of the HTTP request ``scope``: the ``receive`` that hands
        it on byte for byte, or ``None`` when the request was answered here (413, 400) or the
        client went away."""
        rid = request_id(scope)
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
        media = _media_type(headers)
        upload = bool(_UPLOAD.match(scope.get("path", "")))
        max_body = self.max_upload if upload else self.max_body
        declared = next((v for k, v in headers if k.lower() == b"content-length"), None)
        form = upload and media == "multipart/form-data"
        field = "file" if form else "body"
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            await _reject(
                send,
                rid,
                413,
                "payload_too_large",
                _too_large(f"is {int(declared)} bytes", max_body, upload, form),
                field,
            )
            return None
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_body:
                await _reject(
                    send,
                    rid,
                    413,
                    "payload_too_large",
                    _too_large(f"is over {max_body} bytes", max_body, upload, form),
                    field,
                )
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body.strip() and not (upload and media == "multipart/form-data"):
            try:
                loads_strict(body, max_depth=self.max_depth)
            except JsonTooDeep as exc:
                await _reject(send, rid, 400, exc.code, exc.message, exc.field)
                return None
            except InvalidJson as exc:
                if not isinstance(exc, NotJson) or _says_json(media):
                    await _reject(send, rid, 400, exc.code, exc.message, exc.field)
                    return None
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay


def _too_large(size: str, limit: int, upload: bool, form: bool) -> str:
    """The 413's message: a multipart upload's names the file's own limit, and the room its
    form's framing has besides (:data:`UPLOAD_ENVELOPE_BYTES`)."""
    envelope = f"{UPLOAD_ENVELOPE_BYTES // 1024} KiB"
    if form:
        return (
            f"the upload {size}; the limit is {limit - UPLOAD_ENVELOPE_BYTES} bytes for the file"
            f" (knowledge.max_upload_bytes) and {envelope} for the form around it"
        )
    if upload:
        limits = f"knowledge.max_upload_bytes + {envelope}"
        return f"request body {size}; the limit is {limit} bytes ({limits})"
    return f"request body {size}; the limit is {limit} bytes (http.max_body_bytes)"


async def _reject(
    send: Send, rid: str, status: int, code: str, message: str, field: str | None = "body"
) -> None:
    payload = json.dumps(error_body(code, message, field, request_id=rid)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (REQUEST_ID_HEADER.lower().encode(), rid.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
