"""The client: :class:`AsyncLinqra` (asyncio) and, generated from this file, ``Linqra``.

One ``httpx`` client per Linqra client, reused for every call (close it with ``aclose()`` or
``async with``). Every call goes through :meth:`AsyncLinqra.request`, which retries by the
:class:`~linqra_client._base.RetryPolicy` and turns an error answer into the exception for its
code; the resources (``client.workflows``, ``client.executions``, …) are thin, typed methods
over it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

import httpx
import pydantic
from httpx_sse import ServerSentEvent, aconnect_sse

from linqra_client import models
from linqra_client._async.agents import AsyncAgents, AsyncEvents, AsyncTasks
from linqra_client._async.chat import AsyncAssistants, AsyncConversations
from linqra_client._async.knowledge import AsyncKnowledge
from linqra_client._async.operations import AsyncAdmin, AsyncLLM
from linqra_client._async.workflows import AsyncExecutions, AsyncWorkflows
from linqra_client._base import RetryPolicy, asleep, connection_headers, parse
from linqra_client._base import base_url as resolve_base_url
from linqra_client.errors import (
    APIConnectionError,
    APITimeoutError,
    ServerUnreachable,
    error_from_response,
)

__all__ = ["AsyncLinqra"]

M = TypeVar("M", bound=pydantic.BaseModel)
Files = Callable[[], Any]


class AsyncLinqra:
    """A client of one Linqra gateway.

    ``base_url`` defaults to ``$LINQRA_URL``, else ``http://127.0.0.1:8000``. Sign in with an
    ``api_key`` (``lq_…``, sent as ``X-API-Key``) or an OIDC access ``token`` (sent as
    ``Authorization: Bearer``); a gateway in header mode (the embedded profile) takes the
    ``team`` alone. Each defaults to ``$LINQRA_API_KEY``, ``$LINQRA_TOKEN``, ``$LINQRA_TEAM``.

    ``timeout`` bounds each HTTP call (seconds; streams bound the wait for each event);
    ``retry`` says when a refused or failed call is tried again (``RetryPolicy(max_retries=0)``
    never retries). ``http_client`` replaces the ``httpx`` client (its base URL and headers are
    then yours to set)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        token: str | None = None,
        team: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.headers = connection_headers(api_key=api_key, token=token, team=team) | dict(
            headers or {}
        )
        self._http = http_client or httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=timeout
        )
        self.workflows = AsyncWorkflows(self)
        self.executions = AsyncExecutions(self)
        self.knowledge = AsyncKnowledge(self)
        self.assistants = AsyncAssistants(self)
        self.conversations = AsyncConversations(self)
        self.agents = AsyncAgents(self)
        self.tasks = AsyncTasks(self)
        self.events = AsyncEvents(self)
        self.llm = AsyncLLM(self)
        self.admin = AsyncAdmin(self)

    # -- lifecycle -------------------------------------------------------------------------
    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncLinqra:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    # -- calls -----------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        files: Files | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """One API call, retried by :attr:`retry`; a 2xx response, else the error raised.

        ``files`` is a function that returns the multipart ``files`` argument, called once per
        attempt (a retried upload is sent from its start)."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method,
                    path,
                    json=json,
                    params=query,
                    files=files() if files is not None else None,
                    headers=headers,
                    timeout=timeout if timeout is not None else self.timeout,
                )
            except httpx.TransportError as exc:
                delay = self.retry.after_error(attempt, method, exc)
                if delay is None:
                    raise _transport_error(method, path, exc) from exc
            else:
                if response.is_success:
                    return response
                delay = self.retry.after_response(attempt, response)
                if delay is None:
                    raise error_from_response(response)
            attempt += 1
            await asleep(delay)

    async def call(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        """:meth:`request`, its JSON body parsed as ``model``."""
        response = await self.request(method, path, **kwargs)
        return parse(model, response.json())

    async def health(self) -> models.Health:
        """``GET /healthz``: the gateway, its store and its runner, as checked at most a second
        ago (a degraded gateway raises :class:`~linqra_client.errors.Unavailable`)."""
        return await self.call(models.Health, "GET", "/healthz")

    async def ready(self) -> models.Health:
        """``GET /readyz``: the same checks, made now."""
        return await self.call(models.Health, "GET", "/readyz")

    async def me(self) -> models.Me:
        """``GET /v1/me``: who the credentials are, their team and role."""
        return await self.call(models.Me, "GET", "/v1/me")

    async def linq(self, request: dict[str, Any]) -> dict[str, Any]:
        """``POST /linq``: a Linq Protocol request (``{"link": …, "query": …}``) as it is."""
        response = await self.request("POST", "/linq", json=request)
        return dict(response.json())

    # -- streams ---------------------------------------------------------------------------
    @asynccontextmanager
    async def _sse(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        last_event_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[AsyncIterator[ServerSentEvent]]:
        extra = dict(headers or {})
        extra["Accept"] = "text/event-stream"
        if last_event_id:
            extra["Last-Event-ID"] = last_event_id
        async with aconnect_sse(
            self._http, method, path, json=json, headers=extra, timeout=self.timeout
        ) as source:
            if not source.response.is_success:
                await source.response.aread()
                raise error_from_response(source.response)
            yield source.aiter_sse()


def _transport_error(method: str, path: str, exc: httpx.TransportError) -> APIConnectionError:
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return ServerUnreachable(f"{method} {path}: no connection ({type(exc).__name__}: {exc})")
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{method} {path}: no answer in time ({type(exc).__name__})")
    return APIConnectionError(f"{method} {path}: {type(exc).__name__}: {exc}")
