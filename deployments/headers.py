"""CORS and security headers on every response of the gateway (which applies them in its one
middleware, :class:`deployments.edge.Edge`; :func:`install_headers` adds them to another app).

**Security headers** (:class:`SecurityHeaders`), each unless the response set its own:
``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``, ``X-Frame-Options: DENY``
with ``Content-Security-Policy: frame-ancestors 'none'``, ``Cache-Control: no-store`` (API
answers carry team data; the offline docs assets set their own public caching), and
``Strict-Transport-Security`` only when the gateway serves HTTPS itself (``http.tls_certfile``):
a browser ignores it over plain HTTP, and behind a TLS-terminating proxy the proxy adds it. It
also puts ``X-Request-Id`` on the answers given before the error boundary sees the request
(CORS preflights), so every response carries one.

**CORS** (:class:`Cors`) for two kinds of web page. Nothing here uses cookies, so credentials
are never allowed (``Access-Control-Allow-Credentials`` is never sent).

* *Consoles*: the origins of ``http.cors_origins`` (default none) get Starlette's
  ``CORSMiddleware``: every API method, the request headers the API reads (``Authorization``,
  ``X-API-Key``, ``X-Team-Id``, …), and :data:`EXPOSED_HEADERS` readable by the page. With the
  list empty no response carries CORS headers except the two widget cases below.
* *Widget pages*: a widget key (``lq_pub_…``) names its own ``allowed_origins``, and the
  authenticator refuses it (403) from a missing or other ``Origin``. A request presenting a
  widget key gets ``Access-Control-Allow-Origin`` (its own ``Origin`` echoed) only when it
  authenticated as that widget (``request.state.principal.source == "widget"``), which the
  authenticator allows only from one of the key's origins: CORS echoes exactly the origins the
  widget check accepts, whatever ``http.cors_origins`` says. A preflight carries no key, so a
  preflight from any other origin is answered for the widget's shape only (``GET``/``POST``
  with ``Authorization``, ``X-API-Key``, ``X-Request-Id`` and the safelisted headers; anything
  else is a 400 without CORS headers). That answer lets the browser send the request; it does
  not let the page read the response. A widget request refused before it authenticated (a
  401, a 403, or a 429 from the per-key limits, which run before the principal is recorded) is
  not readable by the page either: the browser reports a CORS failure.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.errors import REQUEST_ID_HEADER, error_body, request_id
from linqra.config import HttpSettings

__all__ = [
    "CONSOLE_REQUEST_HEADERS",
    "EXPOSED_HEADERS",
    "HSTS",
    "SECURITY_HEADERS",
    "WIDGET_REQUEST_HEADERS",
    "Cors",
    "SecurityHeaders",
    "add_security_headers",
    "install_headers",
    "security_headers",
]

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Cache-Control": "no-store",
}
HSTS = "max-age=31536000"
"""One year, this host only: ``includeSubDomains`` would bind other services of the domain."""

EXPOSED_HEADERS = (
    REQUEST_ID_HEADER,
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "WWW-Authenticate",
    "X-Conversation-Token",
)
CONSOLE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CONSOLE_REQUEST_HEADERS = (
    "Authorization",
    "X-API-Key",
    "X-Team-Id",
    REQUEST_ID_HEADER,
    "X-Idempotency-Key",
    "If-Match",
    "Last-Event-ID",
)
WIDGET_METHODS = ("GET", "POST")
WIDGET_REQUEST_HEADERS = (
    "Authorization",
    "X-API-Key",
    REQUEST_ID_HEADER,
    "X-Conversation-Token",  # a widget visitor's proof of its conversation (routers/chat.py)
    "Last-Event-ID",
)
PREFLIGHT_MAX_AGE = 600
_WIDGET_KEY = "lq_pub_"


def security_headers(*, hsts: bool = False) -> tuple[tuple[bytes, bytes], ...]:
    """:data:`SECURITY_HEADERS` (and :data:`HSTS` when ``hsts``) as raw response headers."""
    headers = dict(SECURITY_HEADERS)
    if hsts:
        headers["Strict-Transport-Security"] = HSTS
    return tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())


_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")


def add_security_headers(
    headers: list[tuple[bytes, bytes]], fixed: tuple[tuple[bytes, bytes], ...], rid: bytes | None
) -> None:
    """Append each of ``fixed`` (:func:`security_headers`) and ``X-Request-Id: rid`` that
    raw response ``headers`` do not set already (``MutableHeaders.setdefault``'s rule). With
    ``rid`` ``None`` the server adds ``X-Request-Id`` itself (Ray Serve): any here is dropped, so
    the answer has one."""
    present = {name for name, _ in headers}
    for name, value in fixed:
        if name not in present:
            headers.append((name, value))
    if rid is None:
        headers[:] = [(name, value) for name, value in headers if name.lower() != _REQUEST_ID_KEY]
    elif _REQUEST_ID_KEY not in present:
        headers.append((_REQUEST_ID_KEY, rid))


class SecurityHeaders:
    """Pure ASGI middleware: :data:`SECURITY_HEADERS` (and :data:`HSTS` when ``hsts``) and
    ``X-Request-Id`` on every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.headers = security_headers(hsts=hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope).encode("latin-1")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message["headers"] = list(message.get("headers") or [])
                add_security_headers(headers, self.headers, rid)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Cors:
    """Pure ASGI middleware: consoles through Starlette's ``CORSMiddleware``, widget keys by
    their own authenticated origin (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, origins: Sequence[str] = ()) -> None:
        self.app = app
        self.origins = frozenset(origins)
        self.console = CORSMiddleware(
            app,
            allow_origins=sorted(self.origins),
            allow_methods=CONSOLE_METHODS,
            allow_headers=CONSOLE_REQUEST_HEADERS,
            allow_credentials=False,
            expose_headers=EXPOSED_HEADERS,
            max_age=PREFLIGHT_MAX_AGE,
        )
        # only its preflight answer is used: any origin, the widget's methods and headers
        self.widget_preflight = CORSMiddleware(
            app,
            allow_origin_regex=".*",
            allow_methods=WIDGET_METHODS,
            allow_headers=WIDGET_REQUEST_HEADERS,
            allow_credentials=False,
            max_age=PREFLIGHT_MAX_AGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        console = origin in self.origins
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            cors = self.console if console else self.widget_preflight
            await _preflight(cors, headers, scope)(scope, receive, send)
        elif console and not _presents_widget_key(headers):
            await self.console(scope, receive, send)
        else:
            await self._widget(origin, scope, receive, send)

    async def _widget(self, origin: str, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                headers.add_vary_header("Origin")
                if getattr(state.get("principal"), "source", None) == "widget":
                    headers["Access-Control-Allow-Origin"] = origin
                    headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _preflight(cors: CORSMiddleware, headers: Headers, scope: Scope) -> Response:
    """Starlette's preflight answer; a refused one as a JSON error naming what was refused,
    without the ``Access-Control-*`` headers Starlette leaves on it."""
    answer = cors.preflight_response(request_headers=headers)
    if answer.status_code == 200:
        return answer
    refused = bytes(answer.body).decode().removeprefix("Disallowed CORS ").split(", ")
    field = {
        "method": "Access-Control-Request-Method",
        "headers": "Access-Control-Request-Headers",
        "private-network": "Access-Control-Request-Private-Network",
    }.get(refused[0], "Origin")
    return JSONResponse(
        error_body(
            "cors_refused",
            f"{field}: not allowed from this origin, which may send "
            f"{', '.join(cors.allow_methods)} with the headers {', '.join(cors.allow_headers)}",
            field,
            request_id=request_id(scope),
        ),
        status_code=400,
        headers={"Vary": "Origin"},
    )


def _presents_widget_key(headers: Headers) -> bool:
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    return (scheme.lower() == "bearer" and token.strip().startswith(_WIDGET_KEY)) or headers.get(
        "x-api-key", ""
    ).startswith(_WIDGET_KEY)


def install_headers(app: Starlette, http: HttpSettings) -> None:
    """Add :class:`Cors` and, outside it, :class:`SecurityHeaders` to ``app`` (call it after
    every other middleware: the one added last runs first, so these see every response)."""
    app.add_middleware(Cors, origins=http.cors_origins)
    app.add_middleware(SecurityHeaders, hsts=http.tls)
