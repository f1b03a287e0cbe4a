"""Per-team prices: a team's negotiated (or self-hosted) rates replace the catalogue's for it.

An override is a document in the team's ``price_overrides`` collection for one
``provider:model`` (its id :func:`~linqra.store.scoped_id`: the team's own), with the catalogue's rate fields (per million tokens, decimal text). Costs
charged at an override carry the price version ``team:<n>@<catalogue version>`` (``n`` counts
the override's changes), so every usage record still says what it was priced at. Lookups are
cached per process for :data:`CACHE_SECONDS`; the process that changes an override sees it at
once, other processes within that time.
"""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import Any

from linqra.clock import iso
from linqra.errors import NotFound, ValidationError
from linqra.llm.pricing import Catalogue, Price, parse_price
from linqra.store import DocumentStore, get_scoped, scoped_id

__all__ = ["CACHE_SECONDS", "PRICE_OVERRIDES", "PriceOverrides"]

PRICE_OVERRIDES = "price_overrides"
CACHE_SECONDS = 2.0
RATE_FIELDS = ("input", "output", "cache_read", "cache_write", "reasoning")
MAX_RATE = Decimal(100_000)  # per million tokens: far above any public price


class PriceOverrides:
    def __init__(self, store: DocumentStore, catalogue: Catalogue) -> None:
        self.store = store
        self.catalogue = catalogue
        self._cache: dict[str, tuple[float, dict[str, tuple[Price, str]]]] = {}

    async def effective(self, team_id: str, provider: str, model: str) -> tuple[Price | None, str]:
        """The price the team pays for ``provider:model`` and the version to record with it."""
        overrides = await self._team(team_id)
        key = f"{provider}:{model}"
        if key in overrides:
            return overrides[key]
        return self.catalogue.price(provider, model), self.catalogue.version

    async def list(self, team_id: str) -> dict[str, tuple[Price, str]]:
        return await self._team(team_id)

    async def set(self, team_id: str, key: str, raw: dict[str, Any]) -> dict[str, Any]:
        if ":" not in key or not all(key.split(":", 1)):
            raise ValidationError("a model id is provider:model, e.g. openai:gpt-4o", field="model")
        clean = _validated(raw)
        base = self.catalogue.price(*key.split(":", 1))
        if base is not None:  # unspecified fields keep the catalogue's values
            clean.setdefault("kind", base.kind)
            clean.setdefault("context_window", base.context_window)
        existing = await self._doc(team_id, key)
        doc = {
            "id": scoped_id(team_id, key),
            "model": key,
            "rates": clean,
            "revision": (existing["revision"] + 1) if existing else 1,
            "updated_at": iso(),
        }
        if existing is None:
            await self.store.insert(PRICE_OVERRIDES, team_id, doc)
        else:
            await self.store.update(
                PRICE_OVERRIDES,
                team_id,
                existing["id"],
                {k: v for k, v in doc.items() if k != "id"},
            )
        self._cache.pop(team_id, None)
        price, version = (await self._team(team_id))[key]
        return {"id": key, **price.to_json(), "price_version": version, "override": True}

    async def delete(self, team_id: str, key: str) -> None:
        existing = await self._doc(team_id, key)
        if existing is None or not await self.store.delete(
            PRICE_OVERRIDES, team_id, existing["id"]
        ):
            raise NotFound(f"no price override for {key}", field="model")
        self._cache.pop(team_id, None)

    async def _doc(self, team_id: str, key: str) -> dict[str, Any] | None:
        return await get_scoped(self.store, PRICE_OVERRIDES, team_id, key)

    async def _team(self, team_id: str) -> dict[str, tuple[Price, str]]:
        now = time.monotonic()
        hit = self._cache.get(team_id)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        docs = await self.store.find(PRICE_OVERRIDES, team_id, limit=10_000)
        prices: dict[str, tuple[Price, str]] = {}
        for doc in docs:
            model = str(doc.get("model") or doc["id"])
            version = f"team:{doc['revision']}@{self.catalogue.version}"
            prices[model] = (parse_price(model, doc["rates"]), version)
        self._cache[team_id] = (now, prices)
        return prices


def _validated(raw: dict[str, Any]) -> dict[str, Any]:
    unknown = set(raw) - {*RATE_FIELDS, "long_context", "context_window"}
    if unknown:
        name = sorted(unknown)[0]
        raise ValidationError(
            f"unknown field {name!r}; rates are {', '.join(RATE_FIELDS)}", field=name
        )
    if "input" not in raw or "output" not in raw:
        raise ValidationError("input and output rates are required", field="input")
    clean: dict[str, Any] = {name: _rate(raw[name], name) for name in RATE_FIELDS if name in raw}
    window = raw.get("context_window")
    if window is not None:
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ValidationError(
                "context_window must be a whole number ≥ 1", field="context_window"
            )
        clean["context_window"] = window
    long = raw.get("long_context")
    if long is not None:
        if not isinstance(long, dict) or not isinstance(long.get("threshold"), int):
            raise ValidationError(
                "long_context is {threshold: tokens, input, output, …}", field="long_context"
            )
        clean["long_context"] = {
            "threshold": long["threshold"],
            **{
                name: _rate(long[name], f"long_context.{name}")
                for name in RATE_FIELDS
                if name in long
            },
        }
    return clean


def _rate(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValidationError(
            'a rate is a decimal number per million tokens, e.g. "2.50"', field=field
        )
    try:
        rate = Decimal(str(value))
    except InvalidOperation:
        raise ValidationError(f"{value!r} is not a decimal number", field=field) from None
    if not rate.is_finite() or rate < 0 or rate > MAX_RATE:
        raise ValidationError(f"a rate is from 0 to {MAX_RATE} per million tokens", field=field)
    return str(rate)
