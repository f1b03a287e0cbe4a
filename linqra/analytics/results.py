"""Result distribution: a workflow's executions counted by a JMESPath expression over their result.

A plain field path (``status``, ``answer.label``, ``@`` for the whole result) is counted in the
store over every matching execution (``exact: true``). Any other expression (``items[0].kind``,
``length(items)``, a filter …) cannot run in a database: it is evaluated, bounded, over the
newest ``sample`` executions of the range (at most :data:`MAX_SAMPLE`), each evaluation at most
:data:`MAX_STEPS_PER_RESULT` interpreter steps, and the answer says how many it scanned of how
many matched (``exact`` is false when that is fewer).
"""

from __future__ import annotations

import json
import re
from typing import Any

from jmespath.exceptions import JMESPathError

from linqra.analytics.query import Page, TimeRange
from linqra.errors import ValidationError
from linqra.steps._jmespath import (
    ExpressionTooExpensive,
    compile_jmespath,
    search_jmespath,
)
from linqra.store import DocumentStore
from linqra.store.aggregation import Aggregation, Key, Measure
from linqra.workflows.records import EXECUTIONS

__all__ = ["DEFAULT_SAMPLE", "MAX_PATH_CHARS", "MAX_SAMPLE", "MAX_STEPS_PER_RESULT", "distribution"]

DEFAULT_SAMPLE = 1_000
MAX_SAMPLE = 5_000
MAX_PATH_CHARS = 512
MAX_STEPS_PER_RESULT = 10_000
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def plain_path(expression: str) -> str | None:
    """The stored field a plain JMESPath field path names (``result.a.b``), else ``None``."""
    try:
        parsed = compile_jmespath(expression).parsed
    except JMESPathError as exc:
        raise ValidationError(
            f"path is not a valid JMESPath expression: {exc}", field="path"
        ) from None
    if parsed["type"] == "current":
        return "result"
    nodes = parsed["children"] if parsed["type"] == "subexpression" else [parsed]
    names = [n.get("value") for n in nodes if n["type"] == "field"]
    if len(names) != len(nodes) or not all(isinstance(n, str) and _NAME.match(n) for n in names):
        return None
    return "result." + ".".join(names)


async def distribution(
    store: DocumentStore,
    team_id: str,
    workflow_id: str,
    path: str,
    span: TimeRange,
    *,
    status: str | None,
    sample: int,
    page: Page,
) -> dict[str, Any]:
    if not path or len(path) > MAX_PATH_CHARS:
        raise ValidationError(f"path is 1 to {MAX_PATH_CHARS} characters", field="path")
    if not 1 <= sample <= MAX_SAMPLE:
        raise ValidationError(f"sample is 1 to {MAX_SAMPLE:,}", field="sample")
    where: dict[str, Any] = {"workflow_id": workflow_id, "created_at": span.where()}
    if status is not None:
        where["status"] = status
    matched_rows = await store.aggregate(
        team_id, Aggregation(EXECUTIONS, (), (Measure("n", "count"),), where=where)
    )
    matched = matched_rows.rows[0]["n"] if matched_rows.rows else 0
    stored = plain_path(path)
    if stored is not None:
        found = await store.aggregate(
            team_id,
            Aggregation(
                EXECUTIONS, (Key("value", stored, "json"),), (Measure("count", "count"),),
                where=where, order=(("count", -1),), limit=page.limit, skip=page.offset,
            ),
        )  # fmt: skip
        items = [{"value": r["value"], "count": r["count"]} for r in found.rows]
        total, scanned, exact = found.total, matched, True
    else:
        items, total, scanned = await _sampled(store, team_id, where, path, sample, page)
        exact = scanned == matched
    return {
        "workflow_id": workflow_id,
        "path": path,
        "exact": exact,
        "matched": matched,
        "scanned": scanned,
        **page.envelope(items, total),
    }


async def _sampled(
    store: DocumentStore, team_id: str, where: dict[str, Any], path: str, sample: int, page: Page
) -> tuple[list[dict[str, Any]], int, int]:
    docs = await store.find(EXECUTIONS, team_id, where, sort=[("created_at", -1)], limit=sample)
    counts: dict[str, list[Any]] = {}
    for doc in docs:
        try:
            value = search_jmespath(path, doc.get("result"), max_steps=MAX_STEPS_PER_RESULT)
        except ExpressionTooExpensive:
            raise ValidationError(
                f"path takes more than {MAX_STEPS_PER_RESULT:,} steps on one result",
                field="path",
            ) from None
        except JMESPathError as exc:  # e.g. a function given the wrong type
            raise ValidationError(f"path cannot be evaluated: {exc}", field="path") from None
        slot = counts.setdefault(json.dumps(value, sort_keys=True, default=str), [value, 0])
        slot[1] += 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1][1], kv[0]))
    chosen = ranked[page.offset : page.offset + page.limit]
    return [{"value": v, "count": n} for _, (v, n) in chosen], len(ranked), len(docs)
