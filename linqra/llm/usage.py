"""Usage records: one per LLM call, with the tokens by kind, the exact cost and the price version.

Records live in the ``llm_usage`` collection of the team. Amounts are stored as decimal text
(never floats) and summed as ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from linqra.clock import iso, new_id
from linqra.errors import ValidationError
from linqra.llm.pricing import Cost
from linqra.llm.types import Usage
from linqra.store import DocumentStore, IndexSpec

__all__ = ["USAGE", "USAGE_INDEXES", "UsageRepository"]

USAGE = "llm_usage"
USAGE_INDEXES = [
    IndexSpec(USAGE, ("created_at",)),
    IndexSpec(USAGE, ("day", "model")),
    IndexSpec(USAGE, ("caller.run_id",)),
]
GROUPS = ("model", "provider", "day")
_KINDS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)


class UsageRepository:
    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    async def record(
        self,
        team_id: str,
        *,
        provider: str,
        model: str,
        requested: str,
        usage: Usage,
        cost: Cost | None,
        latency_ms: float,
        caller: Mapping[str, Any],
        status: Literal["completed", "cancelled", "failed"] = "completed",
    ) -> dict[str, Any]:
        now = iso()
        doc: dict[str, Any] = {
            "id": new_id("use"),
            "created_at": now,
            "day": now[:10],
            "provider": provider,
            "model": model,
            "requested": requested,
            **{kind: getattr(usage, kind) for kind in _KINDS},
            "estimated": usage.estimated,
            "cost": str(cost.amount) if cost else None,
            "currency": cost.currency if cost else None,
            "price_version": cost.price_version if cost else None,
            "tier": cost.tier if cost else None,
            "latency_ms": latency_ms,
            "caller": dict(caller),
            "status": status,
        }
        await self.store.insert(USAGE, team_id, doc)
        return doc

    async def of_run(self, team_id: str, run_id: str) -> list[dict[str, Any]]:
        """The records of the calls a chat run made (``caller.run_id``), oldest first."""
        return await self.store.find(
            USAGE, team_id, {"caller.run_id": run_id}, sort=[("created_at", 1)], limit=1000
        )

    async def summary(
        self,
        team_id: str,
        *,
        group_by: str = "model",
        start: str | None = None,
        end: str | None = None,
        limit: int = 100_000,
    ) -> list[dict[str, Any]]:
        """Calls, tokens by kind and cost per group, for records in ``[start, end)`` (ISO dates or times)."""
        if group_by not in GROUPS:
            raise ValidationError(f"group_by must be one of {', '.join(GROUPS)}", field="group_by")
        where: dict[str, Any] = {}
        span: dict[str, str] = {}
        if start:
            span["$gte"] = start
        if end:
            span["$lt"] = end
        if span:
            where["created_at"] = span
        rows: dict[str, dict[str, Any]] = {}
        for doc in await self.store.find(
            USAGE, team_id, where, sort=[("created_at", 1)], limit=limit
        ):
            key = str(doc.get(group_by))
            row = rows.setdefault(
                key,
                {
                    group_by: key,
                    "calls": 0,
                    **dict.fromkeys(_KINDS, 0),
                    "cost": Decimal(0),
                    "unpriced_calls": 0,
                },
            )
            row["calls"] += 1
            for kind in _KINDS:
                row[kind] += int(doc.get(kind) or 0)
            if doc.get("cost") is None:
                row["unpriced_calls"] += 1
            else:
                row["cost"] += Decimal(doc["cost"])
        return [{**row, "cost": str(row["cost"])} for _, row in sorted(rows.items())]
