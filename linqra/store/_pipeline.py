"""The MongoDB store's aggregation: an :class:`~linqra.store.aggregation.Aggregation` as one pipeline.

``$match`` (the team and the filter) → ``$group`` (keys under ``_id``, one accumulator per
measure: ``$percentile`` for percentiles, ``$toDecimal`` sums for decimal text) → ``$facet``
with the sorted page and the number of groups. With ``within`` the pipeline runs on the other
collection: its matching documents, then ``$lookup`` of ours by the id they hold (an indexed
equality per document), so a selective filter there stays cheap.

ISO-8601 text instants are read to the millisecond (``$dateFromString`` of the first 23
characters) so that durations agree with SQLite's; hours and days are prefixes of the text.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from linqra.store.aggregation import (
    BUCKET_CHARS,
    Aggregation,
    Groups,
    Key,
    Measure,
    distinct_values,
    order_target,
)
from linqra.store.base import Filter

__all__ = ["MAX_WITHIN_IDS", "groups", "pipeline", "within_ids"]

MAX_WITHIN_IDS = 50_000
"""How many ids of the other collection a ``within`` aggregation reads first to match ours with
an indexed ``$in``; past it, one pipeline with ``$lookup`` (MongoDB ≥ 5 probes the index per
document, a server without that scans)."""


def _path(field: str) -> str:
    return "$_id" if field == "id" else f"${field}"


def _match(team_id: str, where: Filter) -> dict[str, Any]:
    return {**{("_id" if k == "id" else k): v for k, v in where.items()}, "team_id": team_id}


def _is_text(expr: str) -> dict[str, Any]:
    return {"$eq": [{"$type": expr}, "string"]}


def _key(key: Key) -> Any:
    expr = _path(key.field)
    if key.unit in BUCKET_CHARS:
        return {
            "$cond": [_is_text(expr), {"$substrBytes": [expr, 0, BUCKET_CHARS[key.unit]]}, None]
        }
    return {"$ifNull": [expr, None]}


def _instant(field: str) -> dict[str, Any]:
    expr = _path(field)
    text = {"$concat": [{"$substrBytes": [expr, 0, 23]}, "Z"]}
    parsed = {"$dateFromString": {"dateString": text, "onError": None, "onNull": None}}
    return {"$cond": [_is_text(expr), parsed, None]}


def _value(measure: Measure) -> Any:
    assert measure.field is not None
    value: Any = _path(measure.field)
    if measure.until is not None:
        value = {"$subtract": [_instant(measure.until), _instant(measure.field)]}
    if measure.only is None:
        return value
    field, allowed = measure.only
    return {"$cond": [{"$in": [{"$ifNull": [_path(field), None]}, list(allowed)]}, value, None]}


def _accumulator(measure: Measure) -> dict[str, Any]:
    op = measure.op
    if op == "count":
        return {"$sum": 1}
    value = _value(measure)
    if op == "count_in":
        hit = {"$in": [{"$ifNull": [value, None]}, list(measure.values)]}
        return {"$sum": {"$cond": [hit, 1, 0]}}
    if op in ("sum", "avg", "min", "max"):
        return {f"${op}": value}
    if op == "percentiles":
        return {"$percentile": {"input": value, "p": list(measure.ps), "method": "approximate"}}
    if op == "decimal_sum":
        return {"$sum": {"$toDecimal": value}}
    if op == "distinct":
        return {"$addToSet": value}
    raise ValueError(op)


def within_ids(spec: Aggregation, team_id: str) -> tuple[str, dict[str, Any]] | None:
    """``(collection, filter)`` of the ids a ``within`` aggregation first reads, else ``None``."""
    if spec.within is None:
        return None
    return spec.within.collection, _match(team_id, spec.within.where)


def pipeline(
    spec: Aggregation, team_id: str, ids: list[Any] | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The collection to run on and the pipeline answering ``spec`` for ``team_id``; with
    ``within``, over the ``ids`` read first (an indexed ``$in``), or — ``ids`` is ``None``:
    there were more than :data:`MAX_WITHIN_IDS` — a ``$lookup`` from the other collection."""
    stages: list[dict[str, Any]]
    if spec.within is None:
        collection = spec.collection
        stages = [{"$match": _match(team_id, spec.where)}]
    elif ids is not None:
        collection = spec.collection
        local = "_id" if spec.within.field == "id" else spec.within.field
        match = _match(team_id, spec.where)
        among = {"$in": ids}
        # one flat filter (a server may use an index for it only so); $and only if it must
        match = {"$and": [match, {local: among}]} if local in match else {**match, local: among}
        stages = [{"$match": match}]
    else:
        collection = spec.within.collection
        local = spec.within.field
        stages = [
            {"$match": _match(team_id, spec.within.where)},
            {"$project": {"_id": 1}},
            {
                "$lookup": {
                    "from": spec.collection,
                    "localField": "_id",
                    "foreignField": "_id" if local == "id" else local,
                    "pipeline": [{"$match": _match(team_id, spec.where)}],
                    "as": "_r",
                }
            },
            {"$unwind": "$_r"},
            {"$replaceRoot": {"newRoot": "$_r"}},
        ]
    group: dict[str, Any] = {
        "_id": {k.name: _key(k) for k in spec.keys} if spec.keys else None,
        **{m.name: _accumulator(m) for m in spec.measures},
    }
    stages.append({"$group": group})
    page: list[dict[str, Any]] = []
    sort: dict[str, int] = {}
    extra: dict[str, Any] = {}
    for name, direction in spec.order:
        kind, item, index = order_target(spec, name)
        if kind == "key":
            sort[f"_id.{item.name}"] = direction
        elif index is not None:
            extra[f"_o{index}"] = {"$arrayElemAt": [f"${item.name}", index]}
            sort[f"_o{index}"] = direction
        else:
            sort[item.name] = direction
    for key in spec.keys:
        sort.setdefault(f"_id.{key.name}", 1)
    if extra:
        page.append({"$addFields": extra})
    if sort:
        page.append({"$sort": sort})
    page += [{"$skip": spec.skip}, {"$limit": spec.limit}]
    stages.append({"$facet": {"rows": page, "total": [{"$count": "n"}]}})
    return collection, stages


def groups(spec: Aggregation, answer: dict[str, Any]) -> Groups:
    """The ``$facet`` document of :func:`pipeline` as the port answers it."""
    total = answer["total"][0]["n"] if answer.get("total") else 0
    rows = []
    for doc in answer.get("rows", ()):
        keys = doc.get("_id") or {}
        row: dict[str, Any] = {k.name: _plain(keys.get(k.name)) for k in spec.keys}
        for m in spec.measures:
            value = doc.get(m.name)
            if m.op == "percentiles":
                value = [None if v is None else float(v) for v in value or [None] * len(m.ps)]
            elif m.op == "decimal_sum":
                value = str(Decimal(str(value if value is not None else 0)))
            elif m.op == "distinct":
                value = distinct_values(_plain(value))
            else:
                value = _plain(value)
            row[m.name] = value
        rows.append(row)
    return Groups(rows, int(total))


def _plain(value: Any) -> Any:
    """BSON's own types (Decimal128, Int64 …) as plain JSON-compatible Python."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool | str | float) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    to_decimal = getattr(value, "to_decimal", None)
    if to_decimal is not None:
        return float(to_decimal())
    return value
