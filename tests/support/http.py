"""Helpers for tests of the HTTP API in process (the ``client`` fixture, a ``TestClient``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

__all__ = ["TeamClient", "until", "without_team"]


class TeamClient:
    """The same client (same app, same System), every request as ``team``."""

    def __init__(self, client: httpx.Client, team: str) -> None:
        self.client = client
        self.team = team

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        kwargs["headers"] = {"X-Team-Id": self.team, **(kwargs.get("headers") or {})}
        return self.client.request(method, url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


def without_team(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """The request with no ``X-Team-Id`` header at all (the client's default one removed)."""
    request = client.build_request(method, url, **kwargs)
    del request.headers["X-Team-Id"]
    return client.send(request)


def until(check: Callable[[], Any], timeout: float = 30, every: float = 0.02) -> Any:
    """``check()``'s first truthy value, asked every ``every`` seconds for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not true within {timeout}s")


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 30, every: float = 0.02
) -> Any:
    """:func:`until` for a coroutine check, on the running event loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(every)
    raise AssertionError(f"not true within {timeout}s")
