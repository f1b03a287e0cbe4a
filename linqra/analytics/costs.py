"""LLM cost analytics over the usage records (:mod:`linqra.llm.usage`), summed in the store.

A usage record is one LLM call: provider, model, tokens by kind, the exact cost as decimal text
with its currency and price version, the latency, and who called (``caller``: a workflow step,
a chat run of an assistant, the OpenAI-compatible API …). Costs are summed exactly (``Decimal``
in SQLite, ``Decimal128`` in MongoDB) and answered as text; calls without a price are counted
apart (``unpriced_calls``), never as zero cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from linqra.analytics.query import PERCENTILES, Page, TimeRange, bucket_key, bucket_start
from linqra.llm.usage import USAGE
from linqra.store import DocumentStore
from linqra.store.aggregation import Aggregation, Key, Measure

__all__ = ["COST_DIMS", "COST_FILTERS", "COST_SORTS", "EXPENSIVE_BY", "cost_stats"]

TOKENS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)
COST_DIMS = {
    "model": Key("model", "model"),
    "provider": Key("provider", "provider"),
    "team": Key("team", "team_id"),
    "assistant": Key("assistant", "caller.assistant_id"),
    "day": Key("day", "day"),
    "price_version": Key("price_version", "price_version"),
    "currency": Key("currency", "currency"),
    "caller": Key("caller", "caller.type"),
    "status": Key("status", "status"),
    "execution": Key("execution", "caller.execution_id"),
    "chat_run": Key("chat_run", "caller.run_id"),
    "conversation": Key("conversation", "caller.conversation_id"),
    "call": Key("call", "id"),
}
"""``group_by`` names. ``team`` is the team asked about (analytics never cross teams)."""
COST_FILTERS = {
    "model": "model",
    "provider": "provider",
    "assistant_id": "caller.assistant_id",
    "execution_id": "caller.execution_id",
}
COST_SORTS: dict[str, tuple[str, int] | None] = {
    "key": None,
    "cost": ("cost", -1),
    "calls": ("calls", -1),
    "input_tokens": ("input_tokens", -1),
    "output_tokens": ("output_tokens", -1),
    "p95": ("latency.1", -1),
}
EXPENSIVE_BY = ("execution", "chat_run", "conversation", "assistant", "model", "call")
"""What ``top/expensive`` ranks: a run's calls summed, or single calls."""
_P = tuple(float(p) for p in PERCENTILES)


async def cost_stats(
    store: DocumentStore,
    team_id: str,
    span: TimeRange,
    keys: tuple[Key, ...],
    *,
    bucket: str | None,
    order: tuple[tuple[str, int], ...],
    page: Page,
    filters: Mapping[str, str | None],
    present: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One page of groups of the team's LLM calls made in ``span`` (``present``: only calls
    where these fields are set)."""
    where: dict[str, Any] = {"created_at": span.where()}
    for name, value in filters.items():
        if value is not None:
            where[COST_FILTERS[name]] = value
    for name in present:
        where[name] = {"$ne": None}
    measures = (
        Measure("calls", "count"),
        *(Measure(kind, "sum", kind) for kind in TOKENS),
        Measure("cost", "decimal_sum", "cost"),
        Measure("unpriced_calls", "count_in", "cost", values=(None,)),
        Measure("currencies", "distinct", "currency"),
        Measure("price_versions", "distinct", "price_version"),
        Measure("latency", "percentiles", "latency_ms", ps=_P),
        Measure("latency_avg", "avg", "latency_ms"),
        Measure("latency_max", "max", "latency_ms"),
    )
    step = bucket_key(bucket, "created_at")
    grouped = (*keys, step) if step is not None else keys
    found = await store.aggregate(
        team_id,
        Aggregation(
            USAGE, grouped, measures, where=where, order=order,
            limit=page.limit, skip=page.offset,
        ),
    )  # fmt: skip
    items = []
    for row in found.rows:
        item: dict[str, Any] = {}
        for key in grouped:
            item[key.name] = bucket_start(row[key.name]) if key.name == "bucket" else row[key.name]
        p = row["latency"]
        items.append(
            {
                **item,
                "calls": row["calls"],
                **{kind: int(row[kind] or 0) for kind in TOKENS},
                "cost": row["cost"],
                "currencies": [str(c) for c in row["currencies"]],
                "unpriced_calls": row["unpriced_calls"],
                "price_versions": [str(v) for v in row["price_versions"]],
                "latency_ms": {
                    "avg": _ms(row["latency_avg"]),
                    "p50": _ms(p[0]),
                    "p95": _ms(p[1]),
                    "p99": _ms(p[2]),
                    "max": _ms(row["latency_max"]),
                },
            }
        )
    return {
        "from": span.start,
        "to": span.end,
        "bucket": bucket,
        "group_by": [k.name for k in keys],
        **page.envelope(items, found.total),
    }


def _ms(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)
