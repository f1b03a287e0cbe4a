"""The model catalogue and exact costs (``Decimal``), from the provider's own usage counts."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from linqra.llm.types import Usage

__all__ = ["Catalogue", "Cost", "Price", "load_catalogue", "parse_price", "price_cost"]

MILLION = Decimal(1_000_000)
DEFAULT_CATALOGUE = Path(__file__).resolve().parents[2] / "configs" / "models.yaml"


@dataclass(frozen=True, slots=True)
class Rates:
    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    reasoning: Decimal

    @classmethod
    def parse(cls, raw: dict[str, Any], base: Rates | None = None) -> Rates:
        def rate(name: str, default: Decimal) -> Decimal:
            return Decimal(str(raw[name])) if name in raw else default

        inp = rate("input", base.input if base else Decimal(0))
        out = rate("output", base.output if base else Decimal(0))
        return cls(
            input=inp,
            output=out,
            cache_read=rate("cache_read", base.cache_read if base else inp),
            cache_write=rate("cache_write", base.cache_write if base else inp),
            reasoning=rate("reasoning", base.reasoning if base and "output" not in raw else out),
        )


@dataclass(frozen=True, slots=True)
class Price:
    model: str
    kind: str
    context_window: int | None
    rates: Rates
    long_context_threshold: int | None = None
    long_context: Rates | None = None

    def to_json(self) -> dict[str, Any]:
        def rates(r: Rates) -> dict[str, str]:
            return {
                k: str(getattr(r, k))
                for k in ("input", "cache_read", "cache_write", "output", "reasoning")
            }

        out: dict[str, Any] = {
            "kind": self.kind,
            "context_window": self.context_window,
            "price_per_million": rates(self.rates),
        }
        if self.long_context is not None:
            out["long_context"] = {
                "threshold": self.long_context_threshold,
                **rates(self.long_context),
            }
        return out


@dataclass(frozen=True, slots=True)
class Cost:
    amount: Decimal
    currency: str
    price_version: str
    tier: str

    def to_json(self) -> dict[str, str]:
        return {
            "amount": str(self.amount),
            "currency": self.currency,
            "price_version": self.price_version,
            "tier": self.tier,
        }


class Catalogue:
    def __init__(self, version: str, currency: str, prices: dict[str, Price]) -> None:
        self.version = version
        self.currency = currency
        self.prices = prices

    def price(self, provider: str, model: str) -> Price | None:
        return self.prices.get(f"{provider}:{model}")

    def cost(self, provider: str, model: str, usage: Usage) -> Cost | None:
        """Exact cost of one call, or ``None`` when the model is not in the catalogue."""
        price = self.price(provider, model)
        return None if price is None else price_cost(price, usage, self.currency, self.version)


def price_cost(price: Price, usage: Usage, currency: str, version: str) -> Cost:
    """Exact cost of one call at ``price``: each token kind at its rate, the whole request at the
    long-context rates when the prompt is over the threshold."""
    rates, tier = price.rates, "standard"
    threshold = price.long_context_threshold
    if price.long_context is not None and threshold is not None and usage.prompt_tokens > threshold:
        rates, tier = price.long_context, "long_context"
    visible_output = max(usage.output_tokens - usage.reasoning_tokens, 0)
    amount = (
        usage.input_tokens * rates.input
        + usage.cache_read_tokens * rates.cache_read
        + usage.cache_write_tokens * rates.cache_write
        + visible_output * rates.output
        + usage.reasoning_tokens * rates.reasoning
    ) / MILLION
    return Cost(amount, currency, version, tier)


def parse_price(key: str, raw: dict[str, Any]) -> Price:
    rates = Rates.parse(raw)
    long = raw.get("long_context")
    return Price(
        model=key,
        kind=raw.get("kind", "chat"),
        context_window=raw.get("context_window"),
        rates=rates,
        long_context_threshold=long.get("threshold") if long else None,
        long_context=Rates.parse(long, rates) if long else None,
    )


@lru_cache(maxsize=8)
def load_catalogue(path: str | None = None) -> Catalogue:
    data = yaml.safe_load(Path(path or DEFAULT_CATALOGUE).read_text())
    prices = {key: parse_price(key, raw) for key, raw in (data.get("models") or {}).items()}
    return Catalogue(str(data["version"]), str(data.get("currency", "USD")), prices)
