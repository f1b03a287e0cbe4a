# Generated from linqra_client/_async by scripts/client_codegen.py (unasync): do not edit.
"""The LLM layer's usage, budget and prices (``client.llm``), and the team's administration:
members, API keys, provider secrets, the audit log (``client.admin``).

For chat completions themselves use the official ``openai`` SDK against the gateway
(``OpenAI(base_url=f"{url}/v1", api_key=…)``): the gateway speaks its API.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from linqra_client import models as api
from linqra_client._base import check_id, dump, validate
from linqra_client._sync.pagination import Pager

if TYPE_CHECKING:
    from linqra_client._sync.client import Linqra

__all__ = ["Admin", "LLM"]


class LLM:
    """Models and prices, the team's usage and cost, its budget."""

    def __init__(self, client: Linqra) -> None:
        self._client = client

    def models(self) -> api.ModelList:
        """The models the team may call, with their prices per million tokens."""
        return self._client.call(api.ModelList, "GET", "/v1/models")

    def usage(
        self, *, group_by: str = "model", since: str | None = None, until: str | None = None
    ) -> api.UsageSummary:
        """Tokens and exact cost, by ``model``, ``provider`` or ``day``, between two ISO times."""
        return self._client.call(
            api.UsageSummary,
            "GET",
            "/v1/usage",
            params={"group_by": group_by, "from": since, "to": until},
        )

    def budget(self) -> api.BudgetStatus:
        """The team's budget and what it has spent in the period."""
        return self._client.call(api.BudgetStatus, "GET", "/v1/budget")

    def set_budget(
        self, amount: Decimal | str | float, *, period: str | None = None
    ) -> api.BudgetStatus:
        """A spending limit (USD) per ``period`` (``day``, ``month``); calls past it are refused
        before they are bought (:class:`~linqra_client.errors.BudgetExceeded`)."""
        raw = {"amount": str(amount), **({"period": period} if period else {})}
        body = validate(api.BudgetRequest, raw)
        return self._client.call(api.BudgetStatus, "PUT", "/v1/budget", json=dump(body))

    def delete_budget(self) -> None:
        self._client.request("DELETE", "/v1/budget")

    def set_price(self, model_id: str, **prices: Any) -> api.PriceOverride:
        """The team's own price for a model (``input``, ``output``, … per million tokens)."""
        body = validate(api.PutPriceBody, prices)
        return self._client.call(
            api.PriceOverride,
            "PUT",
            f"/v1/models/{check_id(model_id, 'model_id')}/price",
            json=dump(body),
        )

    def delete_price(self, model_id: str) -> None:
        self._client.request("DELETE", f"/v1/models/{check_id(model_id, 'model_id')}/price")


class Admin:
    """The team: members and roles, API keys, provider keys, the audit log."""

    def __init__(self, client: Linqra) -> None:
        self._client = client

    def members(self, *, limit: int = 50) -> Pager[api.Member]:
        return Pager(self._client, "/v1/members", api.Member, limit=limit)

    def set_member(self, user_id: str, role: str) -> api.Member:
        body = validate(api.SetMemberBody, {"role": role})
        return self._client.call(
            api.Member, "PUT", f"/v1/members/{check_id(user_id, 'user_id')}", json=dump(body)
        )

    def remove_member(self, user_id: str) -> None:
        self._client.request("DELETE", f"/v1/members/{check_id(user_id, 'user_id')}")

    def api_keys(self, *, limit: int = 50) -> Pager[api.ApiKey]:
        return Pager(self._client, "/v1/api-keys", api.ApiKey, limit=limit)

    def create_api_key(self, name: str, **fields: Any) -> api.IssuedKey:
        """A new API key (``role``, ``expires_in_days``, ``kind``, ``allowed_origins``, …);
        its secret is in the answer only."""
        body = validate(api.CreateApiKeyBody, {"name": name, **fields})
        return self._client.call(api.IssuedKey, "POST", "/v1/api-keys", json=dump(body))

    def rotate_api_key(self, key_id: str) -> api.IssuedKey:
        return self._client.call(
            api.IssuedKey, "POST", f"/v1/api-keys/{check_id(key_id, 'key_id')}/rotate"
        )

    def revoke_api_key(self, key_id: str) -> api.ApiKey:
        return self._client.call(api.ApiKey, "DELETE", f"/v1/api-keys/{check_id(key_id, 'key_id')}")

    def secrets(self) -> list[api.SecretView]:
        """The team's provider keys (never their values)."""
        listed = self._client.call(api.ItemListSecretView, "GET", "/v1/secrets")
        return list(listed.items)

    def set_secret(self, provider: str, value: str) -> api.SecretView:
        """A provider key for the team, sealed with AES-256-GCM at rest."""
        body = validate(api.SecretInput, {"value": value})
        return self._client.call(
            api.SecretView,
            "PUT",
            f"/v1/secrets/{check_id(provider, 'provider')}",
            json=dump(body),
        )

    def delete_secret(self, provider: str) -> None:
        self._client.request("DELETE", f"/v1/secrets/{check_id(provider, 'provider')}")

    def audit(self, *, limit: int = 50, **filters: Any) -> Pager[api.AuditEvent]:
        """The audit log, newest first (``action``, ``actor``, ``outcome``, ``since``, ``until``)."""
        return Pager(self._client, "/v1/audit", api.AuditEvent, params=filters, limit=limit)

    def create_team(self, **fields: Any) -> api.TeamRecord:
        """A new team (platform admins)."""
        body = validate(api.CreateTeamBody, fields)
        return self._client.call(api.TeamRecord, "POST", "/v1/teams", json=dump(body))
