"""The store's one aggregation: group one team's documents and measure each group, in the database.

:meth:`~linqra.store.base.DocumentStore.aggregate` takes an :class:`Aggregation` — a filter (the
port's filter language), up to :data:`MAX_KEYS` group keys, measures, an order and a page — and
answers :class:`Groups`: one page of rows and how many groups there are. SQLite runs it as one
SQL statement over ``json_extract`` (window functions for percentiles), MongoDB as one
aggregation pipeline; nothing is loaded into Python but the page. It is deliberately not a query
language: the shapes below are all there is, and every adapter answers them alike.

Keys (:class:`Key`) group by a field's value (``value``; booleans are not portable here), its
JSON value (``json``: any value, objects and arrays included, ``null`` for a missing one), or
the hour (``hour``, ``2026-11-24T06``) or day (``day``, ``2026-11-24``) of an ISO-8601 text
field. Measures (:class:`Measure`):

* ``count`` — documents in the group; ``count_in`` — those whose field is one of ``values``;
* ``sum``, ``avg``, ``min``, ``max`` — of a numeric field (missing values are left out);
* ``percentiles`` — nearest-rank percentiles ``ps`` (``sorted[ceil(p*n) - 1]``; MongoDB ≥ 7's
  ``$percentile``, which is approximate on large groups), at most one such measure;
* ``decimal_sum`` — an exact sum of decimal text (``"0.000125"``), answered as text;
* ``distinct`` — the distinct values of a field (keep it to fields with few values).

A measure with ``only = (field, values)`` counts only the documents whose ``field`` is one of
``values`` (the others are left out of it, as missing values are). A numeric measure whose
``until`` is set measures the whole milliseconds from the ISO-8601
instant in ``field`` to the one in ``until`` (both read to the millisecond).

:class:`Within` keeps only documents whose ``field`` holds the id of a document of another
collection of the same team that matches a filter (the step runs of a workflow's executions).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, Literal

from linqra.store.base import Filter, check_collection, check_filter

__all__ = [
    "MAX_GROUP_PAGE",
    "MAX_KEYS",
    "Aggregation",
    "Groups",
    "Key",
    "Measure",
    "Within",
    "check_aggregation",
    "order_target",
]

Unit = Literal["value", "json", "hour", "day"]
Op = Literal[
    "count", "count_in", "sum", "avg", "min", "max", "percentiles", "decimal_sum", "distinct"
]
UNITS = frozenset({"value", "json", "hour", "day"})
OPS = frozenset(
    {"count", "count_in", "sum", "avg", "min", "max", "percentiles", "decimal_sum", "distinct"}
)
NUMERIC_OPS = frozenset({"sum", "avg", "min", "max", "percentiles"})
MAX_KEYS = 8
MAX_GROUP_PAGE = 10_000
"""The most rows one call answers (``limit``)."""
BUCKET_CHARS = {"hour": 13, "day": 10}
"""How much of an ISO-8601 instant names its hour or day."""

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True, slots=True)
class Key:
    """Group by ``field`` (per ``unit``); the row carries the key under ``name``."""

    name: str
    field: str
    unit: Unit = "value"


@dataclass(frozen=True, slots=True)
class Measure:
    """One figure per group, under ``name`` (see the module docstring for the ops)."""

    name: str
    op: Op
    field: str | None = None
    until: str | None = None
    values: tuple[Any, ...] = ()
    ps: tuple[float, ...] = ()
    only: tuple[str, tuple[Any, ...]] | None = None
    """``(field, values)``: only documents whose ``field`` is one of ``values`` count."""


@dataclass(frozen=True, slots=True)
class Within:
    """Only documents whose ``field`` is the id of a document of ``collection`` matching ``where``."""

    collection: str
    field: str
    where: Filter = dc_field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Aggregation:
    """Documents of ``collection`` matching ``where`` (and ``within``), grouped by ``keys`` (none:
    one group of all, absent when nothing matched), with ``measures``; rows sorted by ``order``
    (key or measure names, ``name.i`` for a percentile; then the keys) and paginated."""

    collection: str
    keys: tuple[Key, ...]
    measures: tuple[Measure, ...]
    where: Filter = dc_field(default_factory=dict)
    within: Within | None = None
    order: tuple[tuple[str, int], ...] = ()
    limit: int = 100
    skip: int = 0


@dataclass(frozen=True, slots=True)
class Groups:
    """One page of rows (each: keys and measures by name) and how many groups matched."""

    rows: list[dict[str, Any]]
    total: int


def check_aggregation(spec: Aggregation) -> Aggregation:
    """Refuse a malformed aggregation (``ValueError``: these are built by code, not users)."""
    check_collection(spec.collection)
    check_filter(spec.where)
    if spec.within is not None:
        check_collection(spec.within.collection)
        _check_field(spec.within.field)
        check_filter(spec.within.where)
    if len(spec.keys) > MAX_KEYS:
        raise ValueError(f"at most {MAX_KEYS} keys")
    if not spec.measures:
        raise ValueError("an aggregation needs a measure")
    names: set[str] = set()
    items: list[Key | Measure] = [*spec.keys, *spec.measures]
    for item in items:
        if not _NAME.fullmatch(item.name) or item.name in names:
            raise ValueError(f"invalid or repeated name {item.name!r}")
        names.add(item.name)
    for key in spec.keys:
        _check_field(key.field)
        if key.unit not in UNITS:
            raise ValueError(f"unknown key unit {key.unit!r}")
    for measure in spec.measures:
        _check_measure(measure)
    if sum(m.op == "percentiles" for m in spec.measures) > 1:
        raise ValueError("at most one percentiles measure")
    for name, direction in spec.order:
        order_target(spec, name)
        if direction not in (1, -1):
            raise ValueError("order direction is 1 or -1")
    if not 1 <= spec.limit <= MAX_GROUP_PAGE or spec.skip < 0:
        raise ValueError(f"limit is 1..{MAX_GROUP_PAGE}, skip >= 0")
    return spec


def _check_measure(measure: Measure) -> None:
    if measure.op not in OPS:
        raise ValueError(f"unknown measure op {measure.op!r}")
    if measure.op != "count":
        if measure.field is None:
            raise ValueError(f"{measure.op} needs a field")
        _check_field(measure.field)
    if measure.until is not None:
        if measure.op not in NUMERIC_OPS:
            raise ValueError("until applies to numeric measures")
        _check_field(measure.until)
    for values in (measure.values, measure.only[1] if measure.only else ()):
        if not all(v is None or isinstance(v, str | int | float | bool) for v in values):
            raise ValueError("count_in and only values are scalars")
    if measure.only is not None:
        if measure.op == "count":
            raise ValueError("count counts every document: use count_in")
        _check_field(measure.only[0])
    if measure.op == "percentiles" and (
        not measure.ps or not all(isinstance(p, float) and 0 < p <= 1 for p in measure.ps)
    ):
        raise ValueError("percentiles need ps in (0, 1]")


def order_target(spec: Aggregation, name: str) -> tuple[str, Key | Measure, int | None]:
    """What an order entry names: ``("key" | "measure", item, percentile index or None)``."""
    base, _, index = name.partition(".")
    for key in spec.keys:
        if key.name == name:
            return "key", key, None
    for measure in spec.measures:
        if measure.name == base:
            if measure.op == "percentiles":
                if index.isdigit() and int(index) < len(measure.ps):
                    return "measure", measure, int(index)
            elif not index and measure.op != "distinct":
                return "measure", measure, None
    raise ValueError(f"cannot order by {name!r}")


def _check_field(name: str) -> None:
    if not _FIELD.fullmatch(name):
        raise ValueError(f"invalid field {name!r}")


def nearest_rank(p: float, n: int) -> int:
    """The 1-based rank of the ``p`` percentile of ``n`` sorted values (what both adapters do)."""
    return max(1, math.ceil(p * n))


def distinct_values(values: Any) -> list[Any]:
    """A ``distinct`` measure's values as both adapters answer them: no nulls, in one order."""
    seen = {json.dumps(v, sort_keys=True): v for v in values or () if v is not None}
    return [seen[k] for k in sorted(seen)]
