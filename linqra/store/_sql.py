"""The SQLite store's SQL: filters over ``json_extract``, and the aggregation as one statement.

A collection is a table ``(id, team_id, data)`` with the document as JSON text in ``data``;
every field is read with ``json_extract(data, '$.field')`` (the expression the indexes are on).
An :class:`~linqra.store.aggregation.Aggregation` becomes ``WITH base`` (the matching documents'
keys and measured values; with ``within``, a join driven by the other table) → ``grouped`` (``GROUP BY`` the keys, the number of groups by a window
``COUNT(*) OVER ()``) → for percentiles ``ranked``/``pct`` (``ROW_NUMBER()`` per group, the
nearest-rank row picked) → one page, sorted. Names are validated identifiers, quoted.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
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

__all__ = ["DecimalSum", "aggregate_sql", "extract", "groups", "param", "where_sql"]

DECIMAL_SUM = "linqra_decimal_sum"
"""The SQL aggregate (registered on every connection) that sums decimal text exactly."""


class DecimalSum:
    """``linqra_decimal_sum(text)``: the exact sum as text ("0" for no values)."""

    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, value: Any) -> None:
        if value is None:
            return
        with contextlib.suppress(InvalidOperation):  # not a number: left out
            self.total += Decimal(str(value))

    def finalize(self) -> str:
        return str(self.total)


def extract(field: str, data: str = "data") -> str:
    # field names are validated by check_filter / IndexSpec authors: letters, digits, _ and dots
    if field == "id" and data != "data":
        return f"{data.removesuffix('.data')}.id"
    return f"json_extract({data}, '$.{field}')"


def where_sql(where: Filter, data: str = "data") -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for key, cond in where.items():
        expr = extract(key, data)
        if isinstance(cond, Mapping):
            for op, operand in cond.items():
                clause, extra = _op_sql(expr, op, operand)
                clauses.append(clause)
                args.extend(extra)
        elif cond is None:
            clauses.append(f"{expr} IS NULL")
        else:
            clauses.append(f"{expr} = ?")
            args.append(param(cond))
    return clauses, args


def _op_sql(expr: str, op: str, operand: Any) -> tuple[str, list[Any]]:
    if op in ("$in", "$nin"):  # None in the list: a missing or null value (as matches() has it)
        args: list[Any] = []
        member = _member(expr, operand, args)
        return (member if op == "$in" else f"NOT {member}"), args
    if op == "$ne":
        if operand is None:
            return f"{expr} IS NOT NULL", []
        return f"({expr} IS NULL OR {expr} != ?)", [param(operand)]
    sql_op = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
    return f"{expr} {sql_op} ?", [param(operand)]


def param(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return value


# -- the aggregation ----------------------------------------------------------------------------
def _quote(name: str) -> str:
    return f'"{name}"'  # names are validated: [a-z][a-z0-9_]*


def _key_sql(key: Key, data: str) -> str:
    if key.unit == "json":
        return f"({data} -> '$.{key.field}')"
    if key.unit in BUCKET_CHARS:
        return f"substr({extract(key.field, data)}, 1, {BUCKET_CHARS[key.unit]})"
    return extract(key.field, data)


def _value_sql(measure: Measure, args: list[Any], data: str) -> str:
    assert measure.field is not None
    value = extract(measure.field, data)
    if measure.until is not None:
        start = f"julianday(substr({value}, 1, 23))"
        end = f"julianday(substr({extract(measure.until, data)}, 1, 23))"
        value = f"ROUND(({end} - {start}) * 86400000.0)"
    if measure.only is None:
        return value
    field, allowed = measure.only
    return f"CASE WHEN {_member(extract(field, data), allowed, args)} THEN {value} END"


def _member(column: str, allowed: Sequence[Any], args: list[Any]) -> str:
    """``column`` is one of ``allowed`` (``None`` in it: a missing or null value); never NULL
    itself, so ``NOT`` of it is the complement (``$nin`` matches a missing value unless the
    list holds ``None``)."""
    values = [v for v in allowed if v is not None]
    tests = [f"coalesce({column} IN ({', '.join('?' for _ in values)}), 0)"] if values else []
    args.extend(param(v) for v in values)
    if len(values) < len(allowed):
        tests.append(f"{column} IS NULL")
    return "(" + (" OR ".join(tests) or "0") + ")"


def _measure_sql(measure: Measure, column: str, args: list[Any]) -> str:
    op = measure.op
    if op == "count":
        return "COUNT(*)"
    if op == "count_in":
        test = _member(column, measure.values, args)
        return f"COALESCE(SUM(CASE WHEN {test} THEN 1 ELSE 0 END), 0)"
    if op == "sum":
        return f"COALESCE(SUM({column}), 0)"
    if op in ("avg", "min", "max"):
        return f"{op.upper()}({column})"
    if op == "decimal_sum":
        return f"{DECIMAL_SUM}({column})"
    if op == "distinct":
        return f"json_group_array(DISTINCT {column})"
    raise ValueError(op)  # percentiles are computed in their own CTE


def aggregate_sql(
    spec: Aggregation, team_id: str, table: str, other: str | None
) -> tuple[str, list[Any]]:
    """One statement answering ``spec`` for ``team_id`` (``other``: the ``within`` table)."""
    keys = [_quote(k.name) for k in spec.keys]
    # with ``within``: the other table drives the join (an index range of it), and each of its
    # rows finds ours through the index on the field that holds its id
    data = "data" if spec.within is None else "t.data"
    select = [f"{_key_sql(k, data)} AS {q}" for k, q in zip(spec.keys, keys, strict=True)]
    args: list[Any] = []  # in the order their marks appear: the select's, then the filter's
    values: dict[str, str] = {}  # measure → the column of base it reads
    columns: dict[tuple[str, tuple[Any, ...]], str] = {}  # one column per distinct value
    for m in spec.measures:
        if m.op == "count":
            continue
        marks: list[Any] = []
        expr = _value_sql(m, marks, data)
        column = columns.get((expr, tuple(marks)))
        if column is None:
            column = columns[expr, tuple(marks)] = f"_v{len(columns)}"
            select.append(f"{expr} AS {column}")
            args += marks
        values[m.name] = column
    clauses, where_args = where_sql(spec.where, data)
    if spec.within is None:
        source = table
        clauses.insert(0, "team_id = ?")
        args += [team_id, *where_args]
    else:
        inner, inner_args = where_sql(spec.within.where, "w.data")
        source = (
            f"{other} w CROSS JOIN {table} t ON t.team_id = w.team_id"
            f" AND {extract(spec.within.field, 't.data')} = +w.id"
        )  # the unary + drops w.id's TEXT affinity, so the expression index on ours applies
        clauses = ["w.team_id = ?", *inner, *clauses]
        args += [team_id, *inner_args, *where_args]
    picked = ", ".join(select or ["1 AS _one"])
    base = f"SELECT {picked} FROM {source} WHERE {' AND '.join(clauses)}"

    group_args: list[Any] = []
    measures = [
        f"{_measure_sql(m, values.get(m.name, ''), group_args)} AS {_quote(m.name)}"
        for m in spec.measures
        if m.op != "percentiles"
    ]
    group_by = f" GROUP BY {', '.join(keys)}" if keys else " HAVING COUNT(*) > 0"
    grouped = (
        f"SELECT {', '.join([*keys, *measures, 'COUNT(*) OVER () AS _total'])} FROM base{group_by}"
    )
    ctes = [f"base AS ({base})", f"grouped AS ({grouped})"]
    shown = ["g.*"]
    join = ""
    pct = next((m for m in spec.measures if m.op == "percentiles"), None)
    if pct is not None:
        v = values[pct.name]
        part = f"PARTITION BY {', '.join(keys)}" if keys else ""
        ctes.append(
            f"ranked AS (SELECT {', '.join([*keys, f'{v} AS _v'])}, "
            f"ROW_NUMBER() OVER ({part} ORDER BY {v}) AS _rn, "
            f"COUNT(*) OVER ({part}) AS _cnt FROM base WHERE {v} IS NOT NULL)"
        )
        picks = [
            f"MAX(CASE WHEN _rn = MAX(1, CAST({p!r} * _cnt AS INTEGER) + "
            f"({p!r} * _cnt > CAST({p!r} * _cnt AS INTEGER))) THEN _v END) AS _p{i}"
            for i, p in enumerate(pct.ps)
        ]
        ctes.append(
            f"pct AS (SELECT {', '.join([*keys, *picks])} FROM ranked"
            f"{' GROUP BY ' + ', '.join(keys) if keys else ''})"
        )
        shown += [f"p._p{i}" for i in range(len(pct.ps))]
        on = " AND ".join(f"g.{k} IS p.{k}" for k in keys) or "1"
        join = f" LEFT JOIN pct p ON {on}"
    order = [_order_sql(spec, name, direction) for name, direction in spec.order]
    order += [f"g.{k} ASC" for k in keys]
    sql = f"WITH {', '.join(ctes)} SELECT {', '.join(shown)} FROM grouped g{join}"
    if order:
        sql += " ORDER BY " + ", ".join(order)
    sql += " LIMIT ? OFFSET ?"
    return sql, [*args, *group_args, spec.limit, spec.skip]


def _order_sql(spec: Aggregation, name: str, direction: int) -> str:
    _, item, index = order_target(spec, name)
    way = "DESC" if direction < 0 else "ASC"
    if index is not None:
        return f"p._p{index} {way}"
    column = f"g.{_quote(item.name)}"
    if isinstance(item, Measure) and item.op == "decimal_sum":
        column = f"CAST({column} AS REAL)"
    return f"{column} {way}"


def groups(spec: Aggregation, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> Groups:
    """The rows of :func:`aggregate_sql` (column ``names``) as the port answers them."""
    total = 0
    out = []
    pct = next((m for m in spec.measures if m.op == "percentiles"), None)
    for raw in rows:
        record = dict(zip(names, raw, strict=True))
        total = int(record["_total"])
        row: dict[str, Any] = {}
        for key in spec.keys:
            value = record[key.name]
            row[key.name] = json.loads(value) if key.unit == "json" and value is not None else value
        for m in spec.measures:
            if m.op == "percentiles":
                continue
            value = record[m.name]
            if m.op == "distinct":
                value = distinct_values(json.loads(value))
            row[m.name] = value
        if pct is not None:
            row[pct.name] = [_number(record[f"_p{i}"]) for i in range(len(pct.ps))]
        out.append(row)
    return Groups(out, total)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
