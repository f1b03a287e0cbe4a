"""A real HTTP receiver for notifications (alert webhooks, Alertmanager's webhook receiver): an
ASGI app served by uvicorn on a free loopback port that keeps every request it got and can be
told to fail or to hang."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from linqra.testing.servers import AppServer

__all__ = ["Received", "Receiver"]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered


class Receiver:
    """``with Receiver() as r: … r.url …``; ``r.fail(2)`` answers the next two calls 500,
    ``r.hang = 5`` holds each call 5 s before answering."""

    def __init__(self) -> None:
        self.calls: list[Received] = []
        self.hang = 0.0
        self._failures = 0
        self._lock = threading.Lock()
        self._server = AppServer(
            Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        )
        self.url = self._server.url

    def fail(self, times: int) -> None:
        with self._lock:
            self._failures = times

    async def _handle(self, request: Request) -> JSONResponse:
        body = await request.body()
        if self.hang:
            await asyncio.sleep(self.hang)
        with self._lock:
            status = 500 if self._failures > 0 else 200
            self._failures = max(self._failures - 1, 0)
            self.calls.append(Received(request.url.path, dict(request.headers), body, status))
        return JSONResponse({"ok": status == 200}, status_code=status)

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [c for c in self.calls if path is None or c.path == path]

    def wait(self, check: Callable[[list[Received]], Any], what: str, timeout: float = 30) -> Any:
        """``check(calls)``'s first truthy value, polled until ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            got = check(self.received())
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout:g}s for {what}; got {len(self.calls)} calls")
            time.sleep(0.05)

    def __enter__(self) -> Self:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.__exit__(*exc)
