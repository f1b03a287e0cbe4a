"""The gateway's one ASGI middleware: :class:`Edge`, what five used to do, in one pass.

From the outside in, each request gets what these do on their own (and still do where an app
adds them one by one, as tests of a single concern do):

1. :class:`~deployments.headers.SecurityHeaders` — the security headers and ``X-Request-Id``
   on every answer;
2. :class:`~deployments.headers.Cors` — CORS, only for a request with an ``Origin`` header;
3. :class:`~deployments.limits.RequestLimits` — the body's size and strict JSON (413, 400);
4. :class:`~deployments.auth.AuditTrail` — the ``X-RateLimit-*`` headers and the audit event;
5. :class:`~deployments.errors.ErrorBoundary` — ``X-Request-Id`` on the app's answers and any
   exception turned into a JSON 500.

Five stacked middlewares cost five coroutine frames per request and, on each response
message, five ``send`` wrappers copying or scanning the headers. Here a request without
``Origin`` (servers, SDKs, the CLI: almost every API call) goes through one frame and one
``send`` wrapper that edits the headers once; a browser's request (``Origin``) goes through
the same :class:`~deployments.headers.Cors` object as before, between the two halves. The
answers are the same, header for header and in the same order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.auth import audited, rate_limit_headers, record_audit
from deployments.errors import add_request_id, internal_response, request_id
from deployments.headers import Cors, add_security_headers, security_headers
from deployments.limits import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_JSON_DEPTH,
    DEFAULT_MAX_UPLOAD_BYTES,
    RequestLimits,
)
from linqra import logs, tracing
from linqra.metrics import NOOP
from linqra.metrics.catalogue import HTTP_REQUEST_DURATION, HTTP_REQUESTS

__all__ = ["Edge"]


class Edge:
    """Pure ASGI middleware doing, in order, what the module docstring lists."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        cors_origins: Sequence[str] = (),
        hsts: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        request_id_header: bool = True,
    ) -> None:
        self.app = app
        # Serve puts X-Request-Id on every answer itself (its RequestIdMiddleware, in the proxy
        # and the replica), with the id the request came with: see _header_rid
        self.request_id_header = request_id_header
        self.fixed = security_headers(hsts=hsts)
        # admit() only: the body checks of RequestLimits, without its own call into the app
        self.limits = RequestLimits(
            app,
            max_body_bytes=max_body_bytes,
            max_json_depth=max_json_depth,
            max_upload_bytes=max_upload_bytes,
        )
        self.cors = Cors(self._inner, origins=cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope).encode("latin-1")
        for name, _ in scope["headers"]:
            if name == b"origin":
                break
        else:  # no Origin: no CORS, and the security headers go on in the inner wrapper
            await self._serve(scope, receive, send, rid, outer=True)
            return
        fixed = self.fixed
        header_rid = self._header_rid(scope, rid)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message["headers"] = list(message.get("headers") or [])
                add_security_headers(headers, fixed, header_rid)
            await send(message)

        await self.cors(scope, receive, send_with_headers)

    def _header_rid(self, scope: Scope, rid: bytes) -> bytes | None:
        """The ``X-Request-Id`` this answer needs from us: none under Serve when Serve's, the
        id the request came with, is ours (:func:`~deployments.errors.request_id` adopts it),
        so that the answer has one; ours beside Serve's when we refused that id (too long,
        odd characters), so that the id the error body and the logs name is on the answer."""
        if self.request_id_header:
            return rid
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                return None if value == rid else rid
        return rid

    async def _inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What :class:`~deployments.headers.Cors` wraps: everything inside it."""
        await self._serve(scope, receive, send, request_id(scope).encode("latin-1"), outer=False)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, rid: bytes, *, outer: bool
    ) -> None:
        """Request limits, then the app with the audit trail and the error boundary; with
        ``outer`` the security headers too (``send`` is then the server's own)."""
        fixed = self.fixed
        header_rid = self._header_rid(scope, rid)
        refuse = send
        if outer:

            async def send_refusal(message: Message) -> None:  # RequestLimits' own answers
                if message["type"] == "http.response.start":
                    headers = message["headers"] = list(message.get("headers") or [])
                    add_security_headers(headers, fixed, header_rid)
                await send(message)

            refuse = send_refusal
        replay = await self.limits.admit(scope, receive, refuse)
        if replay is None:
            return
        status = 500
        started = False
        t0 = time.perf_counter()
        method = scope["method"]
        observed = tracing.span(
            f"{method} request",
            parent=Headers(scope=scope).get("traceparent"),
            kind=tracing.SpanKind.SERVER,
            attributes={"http.request.method": method},
        )
        with observed as current, logs.bind(request_id=rid.decode("latin-1")):
            trace_id = tracing.trace_id(tracing.traceparent())

            async def send_answer(message: Message) -> None:
                nonlocal status, started
                if message["type"] == "http.response.start":
                    started = True  # ErrorBoundary: its request id unless the answer has one
                    headers = list(message.get("headers") or [])
                    if header_rid is not None:
                        add_request_id(headers, header_rid)
                    status = message["status"]  # AuditTrail: the status and the rate limits
                    headers += rate_limit_headers(scope)
                    if outer:  # SecurityHeaders, when no CORS layer sits in between
                        add_security_headers(headers, fixed, header_rid)
                    if trace_id:  # where this request's trace is (tracing.otlp_url set)
                        headers.append((b"x-trace-id", trace_id.encode()))
                    message = {**message, "headers": headers}
                await send(message)

            try:
                try:
                    await self.app(scope, replay, send_answer)
                except Exception as exc:  # ErrorBoundary: a JSON 500, not re-raised
                    response = internal_response(exc, scope)
                    if not started:  # else the status is sent: all we can do is log and close
                        # it carries its request id, so send_answer only adds what AuditTrail
                        # and SecurityHeaders add to it
                        await response(scope, replay, send_answer)
            finally:
                if audited(scope, status):
                    await record_audit(scope, status)
                _measure(scope, current, method, status, time.perf_counter() - t0)


def _measure(scope: Scope, span: Any, method: str, status: int, seconds: float) -> None:
    """The request's metrics and its span's name: by route template, never by path (bounded)."""
    route = getattr(scope.get("route"), "path", None) or "unmatched"
    if span is not None:
        span.update_name(f"{method} {route}")
        span.set_attributes({"http.route": route, "http.response.status_code": status})
    system = getattr(getattr(scope.get("app"), "state", None), "system", None)
    metrics = system.metrics if system is not None else NOOP
    if metrics.enabled:
        metrics.add(HTTP_REQUESTS, http_route=route, method=method, status=str(status))
        metrics.observe(HTTP_REQUEST_DURATION, seconds, http_route=route, method=method)
