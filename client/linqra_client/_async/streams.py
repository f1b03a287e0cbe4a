"""Server-sent event streams that survive a cut connection.

:func:`follow` reads one stream of the API and, when the connection breaks or ends before the
stream's last event, connects again with ``Last-Event-ID`` set to the last event it saw, so the
caller misses nothing and sees nothing twice (the API resumes execution and chat streams from
that id). The ``error`` event of a stream is raised as :class:`~linqra_client.errors.StreamError`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse import ServerSentEvent

from linqra_client._base import asleep
from linqra_client.errors import APIConnectionError, ServerUnreachable, StreamError

if TYPE_CHECKING:
    from linqra_client._async.client import AsyncLinqra

__all__ = ["Connect", "follow"]


@dataclass(frozen=True)
class Connect:
    """How to open (or reopen) a stream: the request, and the ``Last-Event-ID`` to send."""

    method: str
    path: str
    json: Any = None
    last_event_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


async def follow(
    client: AsyncLinqra,
    first: Connect,
    *,
    resume: Callable[[str | None], Connect | None],
    is_last: Callable[[ServerSentEvent], bool],
    max_reconnects: int = 5,
) -> AsyncIterator[ServerSentEvent]:
    """The events of a stream, reconnecting after a cut: ``resume(last_id)`` says where to
    (``None``: the stream cannot be resumed, raise). Ends after the event ``is_last`` accepts."""
    plan: Connect | None = first
    last_id: str | None = first.last_event_id
    failures = 0
    error: httpx.TransportError | None = None
    while True:
        assert plan is not None
        try:
            async with client._sse(
                plan.method,
                plan.path,
                json=plan.json,
                last_event_id=last_id,
                headers=plan.headers,
            ) as events:
                async for sse in events:
                    if sse.event == "message" and not sse.data:
                        # a keep-alive comment: httpx-sse dispatches it as an empty event
                        # carrying the last event's id (the spec keeps that id across events)
                        continue
                    if sse.event == "error":
                        raise _stream_error(sse)
                    if sse.id:
                        last_id = sse.id
                    failures = 0
                    yield sse
                    if is_last(sse):
                        return
            cause = "the stream ended before its last event"
        except httpx.TransportError as exc:
            cause, error = f"{type(exc).__name__}: {exc}", exc
        failures += 1
        plan = resume(last_id)
        if plan is None or failures > max_reconnects:
            unreachable = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
            kind = ServerUnreachable if unreachable else APIConnectionError
            raise kind(
                f"{first.method} {first.path}: connection lost ({cause}) and could not be resumed"
            ) from error
        await asleep(min(4.0, 0.2 * 2 ** (failures - 1)))


def data_of(sse: ServerSentEvent) -> Any:
    """An event's JSON data (``None`` for an empty one)."""
    return json.loads(sse.data) if sse.data else None


def _stream_error(sse: ServerSentEvent) -> StreamError:
    try:
        body = json.loads(sse.data)
    except ValueError:
        body = {"message": sse.data}
    error = body.get("error", body) if isinstance(body, dict) else {"message": str(body)}
    return StreamError(
        str(error.get("message") or "stream error"),
        code=str(error.get("code") or "stream_error"),
        field=error.get("field"),
        request_id=error.get("request_id"),
    )
