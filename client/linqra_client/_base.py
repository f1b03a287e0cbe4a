"""What the sync and async clients share: where to connect and as whom, when to retry, and how
a model is checked before it is sent.

The clients themselves are written once, for asyncio, in ``linqra_client/_async``; the sync
ones in ``linqra_client/_sync`` are generated from them by ``unasync`` (``make client``), so
everything here is plain, blocking-free Python that both can call.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pydantic

from linqra_client.errors import InvalidRequest, InvalidResponse, retry_after_seconds

__all__ = [
    "DEFAULT_URL",
    "RetryPolicy",
    "asleep",
    "connection_headers",
    "parse",
    "sleep",
    "validate",
]

DEFAULT_URL = "http://127.0.0.1:8000"
USER_AGENT = "linqra-client/0.1"
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

M = TypeVar("M", bound=pydantic.BaseModel)


def connection_headers(
    *, api_key: str | None, token: str | None, team: str | None
) -> dict[str, str]:
    """The credentials as headers: an API key (``X-API-Key``), an OIDC access token
    (``Authorization: Bearer``), and, for a gateway in header mode, the team (``X-Team-Id``).
    Unset ones come from ``$LINQRA_API_KEY``, ``$LINQRA_TOKEN`` and ``$LINQRA_TEAM``."""
    api_key = api_key if api_key is not None else os.environ.get("LINQRA_API_KEY")
    token = token if token is not None else os.environ.get("LINQRA_TOKEN")
    team = team if team is not None else os.environ.get("LINQRA_TEAM")
    headers = {"User-Agent": USER_AGENT}
    if api_key:
        headers["X-API-Key"] = api_key
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if team:
        headers["X-Team-Id"] = team
    return headers


def base_url(url: str | None) -> str:
    """The gateway's URL: the one given, else ``$LINQRA_URL``, else ``http://127.0.0.1:8000``."""
    chosen = (url or os.environ.get("LINQRA_URL") or DEFAULT_URL).rstrip("/")
    if not chosen.startswith(("http://", "https://")):
        raise InvalidRequest(
            f"base_url must start with http:// or https://, got {chosen!r}",
            code="invalid_request",
            field="base_url",
        )
    return chosen


@dataclass(frozen=True)
class RetryPolicy:
    """When a request is tried again and after how long.

    A ``429`` or ``503`` is retried whatever the method: the API refuses such a request without
    writing anything. The wait is the server's ``Retry-After`` when it gave one (up to
    ``max_retry_after`` seconds; a longer one is raised at once), else an exponential backoff
    with jitter. A connection that could not be opened is retried for every method; one that
    broke after the request was sent only for idempotent methods (GET, PUT, DELETE)."""

    max_retries: int = 2
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    max_retry_after_seconds: float = 60.0

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def after_response(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before trying again, or ``None`` to give up and raise."""
        if attempt >= self.max_retries or response.status_code not in (429, 503):
            return None
        asked = retry_after_seconds(response.headers)
        if asked is None:
            return self._backoff(attempt)
        return asked if asked <= self.max_retry_after_seconds else None

    def after_error(self, attempt: int, method: str, error: httpx.TransportError) -> float | None:
        """Seconds to wait after a transport error, or ``None`` to raise it."""
        if attempt >= self.max_retries:
            return None
        if isinstance(error, httpx.ConnectError) or method.upper() in _IDEMPOTENT:
            return self._backoff(attempt)
        return None


def validate(model: type[M], data: Any, *, field_prefix: str = "") -> M:
    """``data`` checked against a request model of the API's schema; the first problem raises
    :class:`InvalidRequest` naming the field (``body.steps.0.target``) before anything is sent."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        field = ".".join(p for p in (field_prefix, path) if p) or None
        raise InvalidRequest(
            f"{field or 'body'}: {first['msg']}",
            code="invalid_request",
            field=field,
            details=[
                {
                    "field": ".".join(str(p) for p in e["loc"]),
                    "message": e["msg"],
                    "type": e["type"],
                }
                for e in exc.errors()
            ],
        ) from None


def dump(model: pydantic.BaseModel) -> dict[str, Any]:
    """A request model as the JSON body: the fields that were set, by their API names."""
    return model.model_dump(mode="json", exclude_unset=True, by_alias=True)


def parse(model: type[M], data: Any) -> M:
    """A response body as its model; :class:`InvalidResponse` naming the first field that does
    not fit (the answer of an incompatible server, or of something that is not Linqra)."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidResponse(
            f"the answer is not a {model.__name__}: {field or 'body'}: {first['msg']}",
            code="invalid_response",
            field=field,
        ) from None


def check_id(value: str, field: str) -> str:
    """An id for a URL path as the API takes it: 1-128 characters, and no ``/``."""
    if not isinstance(value, str) or not value or "/" in value or len(value) > 128:
        raise InvalidRequest(
            f"{field}: expected an id (1-128 characters, no '/'), got {value!r}",
            code="invalid_request",
            field=field,
        )
    return value


def check_limit(limit: int) -> int:
    """A page size the API accepts (1-100)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise InvalidRequest(
            f"limit: expected an integer from 1 to 100, got {limit!r}",
            code="invalid_request",
            field="limit",
        )
    return limit


async def asleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


async def aread_file(path: Path) -> bytes:
    """A file's bytes, read off the event loop (:class:`InvalidRequest` naming ``path`` when
    it is not a file)."""
    return await asyncio.to_thread(read_file, path)


def read_file(path: Path) -> bytes:
    if not path.is_file():
        raise InvalidRequest(
            f"path: no such file {str(path)!r}", code="invalid_request", field="path"
        )
    return path.read_bytes()


def monotonic() -> float:
    return time.monotonic()
