"""Request limits enforced before routing: body size (413) and JSON nesting depth (400)."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.errors import error_body

_UPLOAD = re.compile(r"^/v1/knowledge/collections/[^/]+/documents/?$")
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_KEEP = bytes(range(256)).translate(None, b"[]{}")


def json_depth(body: bytes) -> int:
    """Maximum nesting of ``[``/``{`` in a JSON text (strings ignored); cheap, no parsing."""
    brackets = _STRINGS.sub(b"", body).translate(None, _KEEP)
    depth = deepest = 0
    for ch in brackets:
        if ch in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class RequestLimits:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_json_depth: int) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_depth = max_json_depth + 2  # the envelope ({"steps": [{...}]}) adds levels

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        max_body, max_depth = self.max_body, self.max_depth
        limits = getattr(getattr(scope.get("app"), "state", None), "limits", None)
        if limits is not None:  # the deployment's settings, set when the replica starts
            max_body, max_depth = limits[0], limits[1] + 2
            if len(limits) > 2 and _UPLOAD.match(scope.get("path", "")):
                max_body = limits[2]  # document uploads have their own, larger limit
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            await self._reject(
                send,
                413,
                "payload_too_large",
                f"request body is {int(declared)} bytes; the limit is {max_body}",
            )
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_body:
                await self._reject(
                    send,
                    413,
                    "payload_too_large",
                    f"request body over the {max_body}-byte limit",
                )
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if b"json" in headers.get(b"content-type", b"json") and json_depth(body) > max_depth:
            await self._reject(send, 400, "too_deep", f"JSON nested deeper than {max_depth} levels")
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _reject(send: Send, status: int, code: str, message: str) -> None:
        payload: Any = json.dumps(error_body(code, message, "(body)")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
