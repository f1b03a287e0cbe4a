"""The one exception tree of Linqra.

::

    LinqraError                      500 internal
    ├── ValidationError              400 invalid_request   (field names the bad input)
    │   └── PayloadTooLarge          413 payload_too_large
    ├── Unauthenticated              401 unauthenticated
    ├── Forbidden                    403 forbidden
    ├── NotFound                     404 not_found
    ├── Conflict                     409 conflict
    ├── RateLimited                  429 rate_limited
    ├── BudgetExceeded               402 budget_exceeded
    ├── ProviderError                502 provider_error
    ├── StepError                    (a step failed; carries retry advice)
    │   ├── StepTimeout              (a step ran past its timeout)
    │   └── EgressRefused            (an outbound address the policy refuses)
    └── Unavailable                  503 unavailable       (retry_after seconds → Retry-After)
        └── StoreError               503 store_unavailable

HTTP status codes are mapped in one table in the gateway (``deployments/errors.py``)
from the ``status`` and ``code`` attributes set here; a 503 (and a 429 that knows when)
carries ``Retry-After`` from ``retry_after``. Every exception whose ``__init__``
differs from ``Exception``'s defines ``__reduce__`` so it survives Ray's pickling
between processes (the base class's ``__reduce__`` keeps every attribute).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BudgetExceeded",
    "Conflict",
    "EgressRefused",
    "Forbidden",
    "LinqraError",
    "NotFound",
    "PayloadTooLarge",
    "ProviderError",
    "RateLimited",
    "StepError",
    "StepTimeout",
    "StoreError",
    "Unauthenticated",
    "Unavailable",
    "ValidationError",
]


class LinqraError(Exception):
    """Base of every error Linqra raises on purpose."""

    status: int = 500
    code: str = "internal"

    def __init__(
        self, message: str, *, field: str | None = None, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))

    def to_dict(self) -> dict[str, Any]:
        """The JSON body the gateway returns: ``{code, message, field?}``."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body


def _rebuild(cls: type[LinqraError], message: str, state: dict[str, Any]) -> LinqraError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ValidationError(LinqraError):
    status = 400
    code = "invalid_request"


class PayloadTooLarge(ValidationError):
    status = 413
    code = "payload_too_large"


class Unauthenticated(LinqraError):
    status = 401
    code = "unauthenticated"


class Forbidden(LinqraError):
    status = 403
    code = "forbidden"


class NotFound(LinqraError):
    status = 404
    code = "not_found"


class Conflict(LinqraError):
    status = 409
    code = "conflict"


class RateLimited(LinqraError):
    status = 429
    code = "rate_limited"


class BudgetExceeded(LinqraError):
    status = 402
    code = "budget_exceeded"


class ProviderError(LinqraError):
    """An LLM provider refused or failed; its own message is kept.

    ``retryable`` and ``retry_after`` (seconds, from ``Retry-After``) advise the router;
    ``upstream_status`` is the provider's HTTP status when there was one.
    """

    status = 502
    code = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.retryable = retryable
        self.retry_after = retry_after
        self.upstream_status = upstream_status
        if upstream_status == 429:
            self.status = 429
        if code is not None:
            self.code = code


class Unavailable(LinqraError):
    """A backing server (store, vector store, queue) did not answer: retry later.

    ``retry_after`` (seconds) becomes the response's ``Retry-After`` header.
    """

    status = 503
    code = "unavailable"
    retry_after: float = 1.0

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        retry_after: float | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, field=field, details=details)
        if retry_after is not None:
            self.retry_after = retry_after


class StoreError(Unavailable):
    status = 503
    code = "store_unavailable"


class StepError(LinqraError):
    """A step failed. Retry advice lives on the error, as in Temporal.

    ``non_retryable`` stops the retry loop at once (a 4xx from a service, a
    missing interpolation path); ``next_retry_delay`` overrides the backoff
    (a ``Retry-After`` header).
    """

    status = 502
    code = "step_failed"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        non_retryable: bool = False,
        next_retry_delay: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.non_retryable = non_retryable
        self.next_retry_delay = next_retry_delay
        if code is not None:
            self.code = code


class StepTimeout(StepError):
    code = "step_timeout"


class EgressRefused(StepError):
    code = "egress_refused"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field, non_retryable=True)
