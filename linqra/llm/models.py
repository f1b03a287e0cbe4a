"""The LLM layer's records as the API returns them (pydantic; unknown fields are kept).

Amounts and rates are decimal text (``"0.0000123"``), never floats, so nothing is rounded on
the way to a client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "BudgetStatus",
    "ChatCompletion",
    "ModelInfo",
    "ModelList",
    "PriceInput",
    "PriceOverride",
    "UsageSummary",
]


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatCompletion(_Record):
    """OpenAI's chat-completion object, plus ``linqra`` (provider, cost, fallback, usage record)."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: dict[str, Any] | None = None
    linqra: dict[str, Any] | None = None


class ModelInfo(_Record):
    """A model at the team's price: ``linqra`` holds the rates, ``configured``,
    ``local_fallback`` (a call now would be answered by the local model) and ``override``."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    linqra: dict[str, Any]


class ModelList(_Record):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


Rate = str | int | float


class PriceInput(BaseModel):
    """The body of ``PUT /v1/models/{provider:model}/price``: rates per million tokens (decimal
    text or a number, 0 to 100,000); unspecified ones keep the catalogue's. Checked by
    :mod:`linqra.llm.overrides` (400 naming the field)."""

    model_config = ConfigDict(extra="forbid")

    input: Rate
    output: Rate
    cache_read: Rate | None = None
    cache_write: Rate | None = None
    reasoning: Rate | None = None
    context_window: int | None = None
    long_context: dict[str, Any] | None = None


class PriceOverride(_Record):
    """A team's own rates for one ``provider:model`` (per million tokens, decimal text)."""

    id: str
    price_per_million: dict[str, str]
    price_version: str
    override: bool


class UsageSummary(_Record):
    """Calls, tokens by kind and cost per ``group_by`` value over ``[from, to)``."""

    group_by: str
    items: list[dict[str, Any]]


class BudgetStatus(_Record):
    """``budget`` (``null`` when none), and for a valid one the current ``period``, ``spent``,
    ``reserved`` and ``remaining`` (decimal text); ``error`` when the stored one is invalid."""

    budget: dict[str, Any] | None
    period: str | None = None
    spent: str | None = None
    reserved: str | None = None
    remaining: str | None = None
    error: str | None = None
