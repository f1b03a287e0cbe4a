"""The LLM layer's usage, budget and prices (``client.llm``), and the team's administration:
members, API keys, provider secrets, the audit log (``client.admin``).

For chat completions themselves use the official ``openai`` SDK against the gateway
(``OpenAI(base_url=f"{url}/v1", api_key=…)``): the gateway speaks its API.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from linqra_client import models as api
from linqra_client._async.pagination import AsyncPager
from linqra_client._base import check_id, dump, validate

if TYPE_CHECKING:
    from linqra_client._async.client import AsyncLinqra

__all__ = ["AsyncAdmin", "AsyncLLM"]


class AsyncLLM:
    """Models and prices, the team's usage and cost, its budget."""

    def __init__(self, client: AsyncLinqra) -> None:
        self._client = client

    async def models(self) -> api.ModelList:
        """The models the team may call, with their prices per million tokens."""
        return await self._client.call(api.ModelList, "GET", "/v1/models")

    async def usage(
        self, *, group_by: str = "model", since: str | None = None, until: str | None = None
    ) -> api.UsageSummary:
        """Tokens and exact cost, by ``model``, ``provider`` or ``day``, between two ISO times."""
        return await self._client.call(
            api.UsageSummary,
            "GET",
            "/v1/usage",
            params={"group_by": group_by, "from": since, "to": until},
        )

    async def budget(self) -> api.BudgetStatus:
        """The team's budget and what it has spent in the period."""
        return await self._client.call(api.BudgetStatus, "GET", "/v1/budget")

    async def set_budget(
        self, amount: Decimal | str | float, *, period: str | None = None
    ) -> api.BudgetStatus:
        """A spending limit (USD) per ``period`` (``day``, ``month``); calls past it are refused
        before they are bought (:class:`~linqra_client.errors.BudgetExceeded`)."""
        raw = {"amount": str(amount), **({"period": period} if period else {})}
        body = validate(api.BudgetRequest, raw)
        return await self._client.call(api.BudgetStatus, "PUT", "/v1/budget", json=dump(body))

    async def delete_budget(self) -> None:
        await self._client.request("DELETE", "/v1/budget")

    async def set_price(self, model_id: str, **prices: Any) -> api.PriceOverride:
        """The team's own price for a model (``input``, ``output``, … per million tokens)."""
        body = validate(api.PutPriceBody, prices)
        return await self._client.call(
            api.PriceOverride,
            "PUT",
            f"/v1/models/{check_id(model_id, 'model_id')}/price",
            json=dump(body),
        )

    async def delete_price(self, model_id: str) -> None:
        await self._client.request("DELETE", f"/v1/models/{check_id(model_id, 'model_id')}/price")


class AsyncAdmin:
    """The team: members and roles, API keys, provider keys, the audit log."""

    def __init__(self, client: AsyncLinqra) -> None:
        self._client = client

    def members(self, *, limit: int = 50) -> AsyncPager[api.Member]:
        return AsyncPager(self._client, "/v1/members", api.Member, limit=limit)

    async def set_member(self, user_id: str, role: str) -> api.Member:
        body = validate(api.SetMemberBody, {"role": role})
        return await self._client.call(
            api.Member, "PUT", f"/v1/members/{check_id(user_id, 'user_id')}", json=dump(body)
        )

    async def remove_member(self, user_id: str) -> None:
        await self._client.request("DELETE", f"/v1/members/{check_id(user_id, 'user_id')}")

    def api_keys(self, *, limit: int = 50) -> AsyncPager[api.ApiKey]:
        return AsyncPager(self._client, "/v1/api-keys", api.ApiKey, limit=limit)

    async def create_api_key(self, name: str, **fields: Any) -> api.IssuedKey:
        """A new API key (``role``, ``expires_in_days``, ``kind``, ``allowed_origins``, …);
        its secret is in the answer only."""
        body = validate(api.CreateApiKeyBody, {"name": name, **fields})
        return await self._client.call(api.IssuedKey, "POST", "/v1/api-keys", json=dump(body))

    async def rotate_api_key(self, key_id: str) -> api.IssuedKey:
        return await self._client.call(
            api.IssuedKey, "POST", f"/v1/api-keys/{check_id(key_id, 'key_id')}/rotate"
        )

    async def revoke_api_key(self, key_id: str) -> api.ApiKey:
        return await self._client.call(
            api.ApiKey, "DELETE", f"/v1/api-keys/{check_id(key_id, 'key_id')}"
        )

    async def secrets(self) -> list[api.SecretView]:
        """The team's provider keys (never their values)."""
        listed = await self._client.call(api.ItemListSecretView, "GET", "/v1/secrets")
        return list(listed.items)

    async def set_secret(self, provider: str, value: str) -> api.SecretView:
        """A provider key for the team, sealed with AES-256-GCM at rest."""
        body = validate(api.SecretInput, {"value": value})
        return await self._client.call(
            api.SecretView,
            "PUT",
            f"/v1/secrets/{check_id(provider, 'provider')}",
            json=dump(body),
        )

    async def delete_secret(self, provider: str) -> None:
        await self._client.request("DELETE", f"/v1/secrets/{check_id(provider, 'provider')}")

    def audit(self, *, limit: int = 50, **filters: Any) -> AsyncPager[api.AuditEvent]:
        """The audit log, newest first (``action``, ``actor``, ``outcome``, ``since``, ``until``)."""
        return AsyncPager(self._client, "/v1/audit", api.AuditEvent, params=filters, limit=limit)

    async def create_team(self, **fields: Any) -> api.TeamRecord:
        """A new team (platform admins)."""
        body = validate(api.CreateTeamBody, fields)
        return await self._client.call(api.TeamRecord, "POST", "/v1/teams", json=dump(body))
