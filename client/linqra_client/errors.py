"""The exceptions the client raises: one class per kind of error the API answers with.

Every error body of the API is ``{"error": {"code", "message", "field"?, "details"?,
"request_id"}}``; :func:`error_from_response` turns it into the class for its ``code`` (else for
its HTTP status), keeping the server's message, field and request id, so a caller can catch
:class:`NotFound` or :class:`RateLimited` and quote the request id in a report.

Invalid input found before a request is sent raises :class:`InvalidRequest` too, with
``status=None`` and the same ``field`` naming the server would use::

    LinqraError
    ├── APIError                  status, code, message, field, request_id, details
    │   ├── InvalidRequest        400 invalid_request, invalid_json, too_deep (or before sending)
    │   │   └── PayloadTooLarge   413 payload_too_large
    │   ├── Unauthenticated       401
    │   ├── BudgetExceeded        402 budget_exceeded, budget_invalid
    │   ├── Forbidden             403
    │   ├── NotFound              404
    │   ├── Conflict              409
    │   ├── RateLimited           429 rate_limited, provider_rate_limited (retried first)
    │   ├── InternalError         500
    │   ├── ProviderError         502 provider_error, step_failed, …
    │   ├── Unavailable           503 unavailable, store_unavailable, … (retried first)
    │   ├── StreamError           an ``error`` event inside a stream
    │   └── InvalidResponse       a 2xx answer that is not what the API's schema says
    └── APIConnectionError        a connection that broke and could not be resumed
        ├── ServerUnreachable     nothing answers at the address (refused, unknown host)
        └── APITimeoutError       no answer within the client's timeout
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "BudgetExceeded",
    "Conflict",
    "Forbidden",
    "InternalError",
    "InvalidRequest",
    "InvalidResponse",
    "LinqraError",
    "NotFound",
    "PayloadTooLarge",
    "ProviderError",
    "RateLimited",
    "ServerUnreachable",
    "StreamError",
    "Unauthenticated",
    "Unavailable",
    "error_from_response",
    "retry_after_seconds",
]


class LinqraError(Exception):
    """Everything this client raises derives from this class."""


class APIError(LinqraError):
    """An error answered by the API (or refused here before sending, ``status=None``).

    ``code`` is the API's error code (``not_found``, ``invalid_request``, …), ``field`` the
    request field it names, ``request_id`` the id the server logged the request under."""

    status_code: int | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        status: int | None = None,
        field: str | None = None,
        request_id: str | None = None,
        details: list[dict[str, Any]] | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.field = field
        self.request_id = request_id
        self.details = details or []
        self.response = response

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked to wait (``Retry-After``), when it said."""
        return retry_after_seconds(self.response.headers) if self.response is not None else None

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        rid = f" [request {self.request_id}]" if self.request_id else ""
        status = f"{self.status} " if self.status else ""
        return f"{status}{self.code}{where}: {self.message}{rid}"


class InvalidRequest(APIError):
    """400: a field is missing, unknown, of the wrong type or value (``invalid_request``,
    ``invalid_json``, ``too_deep``); raised before sending when the client can tell."""

    status_code = 400


class Unauthenticated(APIError):
    """401: no credentials, or a token or key that is not valid."""

    status_code = 401


class BudgetExceeded(APIError):
    """402: an LLM or embedding call would exceed the team's budget (``budget_exceeded``,
    ``budget_invalid``)."""

    status_code = 402


class Forbidden(APIError):
    """403: the caller's role may not do this."""

    status_code = 403


class NotFound(APIError):
    """404: no such id in the caller's team (another team's ids answer the same)."""

    status_code = 404


class Conflict(APIError):
    """409: the resource is not in a state that allows this (cancel of a finished run, …)."""

    status_code = 409


class PayloadTooLarge(InvalidRequest):
    """413: the body or upload is over the server's limit."""

    status_code = 413


class RateLimited(APIError):
    """429: too many requests (``rate_limited``), or an LLM provider's refusal
    (``provider_rate_limited``); :attr:`retry_after` says when to try again."""

    status_code = 429


class InternalError(APIError):
    """500: the server failed; quote :attr:`request_id` when reporting it."""

    status_code = 500


class ProviderError(APIError):
    """502: an LLM provider or a step's service failed (its message kept)."""

    status_code = 502


class Unavailable(APIError):
    """503: a backing server (store, vector store, cluster) does not answer; retried with
    backoff before it is raised (``store_unavailable``, ``vector_store_unavailable``, …)."""

    status_code = 503


class APIConnectionError(LinqraError):
    """The server could not be reached, or the connection broke and could not be resumed."""


class ServerUnreachable(APIConnectionError):
    """No connection could be opened: nothing listens at the address, or the host is unknown
    (is Linqra running there?)."""


class APITimeoutError(APIConnectionError):
    """The server did not answer within the client's timeout."""


class InvalidResponse(APIError):
    """A successful answer this client cannot read as the API's schema says (a newer or older
    server, or not Linqra at that address)."""


class StreamError(APIError):
    """An ``error`` event inside a stream (the server's code and message)."""


_BY_STATUS: dict[int, type[APIError]] = {
    cls.status_code: cls
    for cls in (
        InvalidRequest,
        Unauthenticated,
        BudgetExceeded,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        RateLimited,
        InternalError,
        ProviderError,
        Unavailable,
    )
    if cls.status_code is not None
}
_BY_STATUS[422] = InvalidRequest

# codes whose class is not their status's (a provider's 429 is still a rate limit)
_BY_CODE: dict[str, type[APIError]] = {
    "provider_rate_limited": RateLimited,
    "payload_too_large": PayloadTooLarge,
}


def error_from_response(response: httpx.Response) -> APIError:
    """The exception for an error response, with the server's code, message and request id."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):  # not the API's envelope (a proxy's page, a bare 502)
        error = {"code": f"http_{response.status_code}", "message": response.text[:500]}
    code = str(error.get("code") or f"http_{response.status_code}")
    cls = _BY_CODE.get(code) or _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = InternalError if response.status_code >= 500 else InvalidRequest
    return cls(
        str(error.get("message") or response.reason_phrase or "error"),
        code=code,
        status=response.status_code,
        field=error.get("field"),
        request_id=error.get("request_id") or response.headers.get("x-request-id"),
        details=error.get("details"),
        response=response,
    )


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """``Retry-After`` in seconds (a number, or an HTTP date), ``None`` when absent or unreadable."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import UTC, datetime

    return max(0.0, (when - datetime.now(UTC)).total_seconds())
