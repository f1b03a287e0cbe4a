"""What every SDK-backed provider shares: credentials by environment variable, one lazily built
client per process, closing it. Adapters supply ``_make_client`` (and ``_close_client`` where the
SDK closes differently) and ``model``."""

from __future__ import annotations

import inspect
import os
from typing import Any, ClassVar

from linqra.errors import ProviderError
from linqra.resilience import parse_retry_after

__all__ = ["RETRYABLE_STATUSES", "SDKProvider", "status_error"]

# HTTP statuses from a provider worth another attempt (and every 5xx, 529 "overloaded" included)
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})


def status_error(
    provider: str, status: int, detail: object, retry_after_header: str | None
) -> ProviderError:
    """One provider HTTP error in our terms, the same for every vendor: retryable or not,
    ``Retry-After`` honoured, 429 as ``provider_rate_limited``, the vendor's message kept."""
    return ProviderError(
        f"{provider}: HTTP {status}: {detail}",
        retryable=status in RETRYABLE_STATUSES or status >= 500,
        retry_after=parse_retry_after(retry_after_header),
        upstream_status=status or None,
        code="provider_rate_limited" if status == 429 else "provider_error",
    )


_DEFAULT_ENV = "<the provider's usual variable>"


class SDKProvider:
    sdk_module: ClassVar[str]
    """The vendor SDK it calls through, imported on its first call."""
    default_key_env: ClassVar[str | None] = None
    key_optional_with_base_url: ClassVar[bool] = False  # OpenAI-compatible local servers need none

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = _DEFAULT_ENV,
        timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.base_url = base_url
        self.timeout = timeout
        self._api_key = api_key
        # None means "no key variable" (a local OpenAI-compatible server); omitted, the usual one
        self.api_key_env = self.default_key_env if api_key_env == _DEFAULT_ENV else api_key_env
        self._client: Any = None

    def api_key(self) -> str:
        key = self._api_key or (os.environ.get(self.api_key_env) if self.api_key_env else None)
        if key:
            return key
        if self.key_optional_with_base_url and self.base_url:
            return "not-needed"
        raise ProviderError(
            f"provider {self.name!r} has no API key: set {self.api_key_env}", code="missing_api_key"
        )

    def client(self) -> Any:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        raise NotImplementedError

    async def _close_client(self, client: Any) -> None:
        close = getattr(client, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await self._close_client(client)
