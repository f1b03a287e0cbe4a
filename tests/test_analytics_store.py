"""The store's aggregation (``DocumentStore.aggregate``), one contract run against SQLite and a
MongoDB wire server (SecantusDB): the same groups, measures, order and pages from both."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from linqra.store import DocumentStore, IndexSpec, mongo, open_store
from linqra.store.aggregation import Aggregation, Key, Measure, Within, nearest_rank

DURATIONS = [float(v) for v in (5, 1, 9, 3, 7, 2, 8, 4, 6, 10)]  # workflow "a"; "b" gets 100s


def _runs() -> list[dict[str, object]]:
    docs: list[dict[str, object]] = []
    for i, ms in enumerate(DURATIONS):
        docs.append(
            {
                "id": f"a{i}",
                "wf": "a",
                "status": "FAILED" if i in (1, 4) else "COMPLETED",
                "ms": ms,
                "at": f"2026-11-0{1 + i % 2}T0{i % 3}:15:00.000000Z",
                "end": f"2026-11-0{1 + i % 2}T0{i % 3}:15:0{i % 10}.250000Z",
                "cost": f"{(i + 1) / 1e6:.6f}",
                "version": "v1" if i < 5 else "v2",
                "result": {"kind": ["x", "y"][i % 2], "obj": {"n": i % 2}} if i < 8 else None,
                "flag": i % 2 == 0,
            }
        )
    for i in range(3):
        docs.append({"id": f"b{i}", "wf": "b", "status": "TIMEOUT", "ms": 100.0 + i,
                     "at": "2026-11-03T10:00:00.000000Z", "cost": None})  # fmt: skip
    return docs


class AggregateContract:
    async def _seed(self, store: DocumentStore) -> None:
        for doc in _runs():
            await store.insert("runs", "t1", doc)
        await store.insert("runs", "t2", {"id": "other", "wf": "a", "status": "FAILED", "ms": 1e6})

    async def test_counts_rates_and_percentiles_per_group(self, store: DocumentStore) -> None:
        await self._seed(store)
        spec = Aggregation(
            "runs",
            keys=(Key("workflow", "wf"),),
            measures=(
                Measure("runs", "count"),
                Measure("completed", "count_in", "status", values=("COMPLETED",)),
                Measure("failures", "count_in", "status", values=("FAILED", "TIMEOUT")),
                Measure("total_ms", "sum", "ms"),
                Measure("avg_ms", "avg", "ms"),
                Measure("max_ms", "max", "ms"),
                Measure("min_ms", "min", "ms"),
                Measure("p", "percentiles", "ms", ps=(0.5, 0.95, 0.99, 0.1)),
            ),
        )
        got = await store.aggregate("t1", spec)
        assert got.total == 2
        a, b = got.rows
        ranks = [sorted(DURATIONS)[nearest_rank(p, 10) - 1] for p in (0.5, 0.95, 0.99, 0.1)]
        assert a == {"workflow": "a", "runs": 10, "completed": 8, "failures": 2, "total_ms": 55.0,
                     "avg_ms": 5.5, "max_ms": 10.0, "min_ms": 1.0, "p": ranks}  # fmt: skip
        assert ranks == [5.0, 10.0, 10.0, 1.0]
        assert b["runs"] == 3 and b["failures"] == 3 and b["p"] == [101.0, 102.0, 102.0, 100.0]
        # another team's documents never count
        other = await store.aggregate("t2", spec)
        assert [(r["workflow"], r["runs"]) for r in other.rows] == [("a", 1)]

    async def test_hour_and_day_buckets_durations_between_instants(
        self, store: DocumentStore
    ) -> None:
        await self._seed(store)
        spec = Aggregation(
            "runs",
            keys=(Key("day", "at", "day"), Key("hour", "at", "hour")),
            measures=(
                Measure("runs", "count"),
                Measure("span", "max", "at", until="end"),
                Measure("span_p", "percentiles", "at", until="end", ps=(0.5,)),
            ),
            where={"wf": "a"},
        )
        got = await store.aggregate("t1", spec)
        rows = [(r["day"], r["hour"], r["runs"], r["span"]) for r in got.rows]
        assert rows == [
            ("2026-11-01", "2026-11-01T00", 2, 6250),
            ("2026-11-01", "2026-11-01T01", 1, 4250),
            ("2026-11-01", "2026-11-01T02", 2, 8250),
            ("2026-11-02", "2026-11-02T00", 2, 9250),
            ("2026-11-02", "2026-11-02T01", 2, 7250),
            ("2026-11-02", "2026-11-02T02", 1, 5250),
        ]
        assert got.rows[0]["span_p"] == [250.0]  # of 250 and 6250: the lower

    async def test_json_keys_distinct_and_exact_decimal_sums(self, store: DocumentStore) -> None:
        await self._seed(store)
        got = await store.aggregate(
            "t1",
            Aggregation(
                "runs",
                keys=(Key("value", "result.obj", "json"),),
                measures=(
                    Measure("n", "count"),
                    Measure("versions", "distinct", "version"),
                    Measure("cost", "decimal_sum", "cost"),
                ),
            ),
        )
        rows = {repr(r["value"]): r for r in got.rows}
        assert set(rows) == {"None", "{'n': 0}", "{'n': 1}"}
        assert rows["None"]["n"] == 5  # no result, or a result without obj
        assert rows["{'n': 0}"]["versions"] == ["v1", "v2"]
        assert Decimal(rows["{'n': 0}"]["cost"]) == Decimal("0.000016")  # 1+3+5+7 millionths
        assert Decimal(rows["None"]["cost"]) == Decimal("0.000019")  # 9, 10 and three nulls
        kinds = await store.aggregate(
            "t1",
            Aggregation("runs", (Key("kind", "result.kind", "json"),), (Measure("n", "count"),)),
        )
        assert [(r["kind"], r["n"]) for r in kinds.rows] == [(None, 5), ("x", 4), ("y", 4)]

    async def test_order_pages_and_totals(self, store: DocumentStore) -> None:
        await self._seed(store)
        spec = Aggregation(
            "runs",
            keys=(Key("id", "id"), Key("workflow", "wf")),
            measures=(Measure("ms", "max", "ms"),),
            where={"ms": {"$ne": None}},
            order=(("ms", -1),),
            limit=4,
        )
        first = await store.aggregate("t1", spec)
        assert [r["id"] for r in first.rows] == ["b2", "b1", "b0", "a9"]
        assert first.total == 13
        later = await store.aggregate("t1", Aggregation(**{**_fields(spec), "skip": 12}))
        assert [r["id"] for r in later.rows] == ["a1"] and later.total == 13
        past = await store.aggregate("t1", Aggregation(**{**_fields(spec), "skip": 50}))
        assert past.rows == [] and past.total == 13
        by_p95 = await store.aggregate(
            "t1",
            Aggregation(
                "runs",
                (Key("workflow", "wf"),),
                (
                    Measure("p", "percentiles", "ms", ps=(0.5, 0.95)),
                    Measure("c", "decimal_sum", "cost"),
                ),
                order=(("p.1", -1),),
            ),
        )
        assert [r["workflow"] for r in by_p95.rows] == ["b", "a"]
        by_cost = await store.aggregate(
            "t1", Aggregation("runs", (Key("id", "id"),), (Measure("c", "decimal_sum", "cost"),),
                              where={"wf": "a"}, order=(("c", -1),), limit=2),
        )  # fmt: skip
        assert [r["id"] for r in by_cost.rows] == ["a9", "a8"]

    async def test_one_group_of_all_and_nothing_matched(self, store: DocumentStore) -> None:
        await self._seed(store)
        everything = await store.aggregate(
            "t1", Aggregation("runs", (), (Measure("n", "count"), Measure("p", "percentiles", "ms", ps=(1.0,))))
        )  # fmt: skip
        assert everything.rows == [{"n": 13, "p": [102.0]}] and everything.total == 1
        nothing = await store.aggregate(
            "t1", Aggregation("runs", (), (Measure("n", "count"),), where={"wf": "zzz"})
        )
        assert nothing.rows == [] and nothing.total == 0
        missing = await store.aggregate(
            "t1", Aggregation("never_written", (Key("k", "k"),), (Measure("n", "count"),))
        )
        assert missing.rows == [] and missing.total == 0

    async def test_within_keeps_documents_of_matching_parents(self, store: DocumentStore) -> None:
        await self._seed(store)
        for i in range(13):
            parent = _runs()[i]["id"]
            for step in (1, 2):
                await store.insert("steps", "t1", {"id": f"{parent}:{step}", "run_id": parent,
                                                   "step": step, "ms": float(step * 10 + i)})  # fmt: skip
        await store.insert("steps", "t2", {"id": "x:1", "run_id": "a0", "step": 1, "ms": 0.0})
        got = await store.aggregate(
            "t1",
            Aggregation(
                "steps",
                keys=(Key("step", "step"),),
                measures=(Measure("n", "count"), Measure("top", "max", "ms")),
                within=Within("runs", "run_id", {"wf": "b"}),
            ),
        )
        assert got.rows == [{"step": 1, "n": 3, "top": 22.0}, {"step": 2, "n": 3, "top": 32.0}]

    async def test_a_measure_only_over_some_documents(self, store: DocumentStore) -> None:
        await self._seed(store)
        only_done = ("status", ("COMPLETED",))
        got = await store.aggregate(
            "t1",
            Aggregation(
                "runs",
                keys=(Key("workflow", "wf"),),
                measures=(
                    Measure("n", "count"),
                    Measure("p", "percentiles", "ms", ps=(1.0,), only=only_done),
                    Measure("top", "max", "ms", only=("flag", (True,))),
                    Measure("spans", "avg", "at", until="end", only=only_done),
                ),
            ),
        )
        a, b = got.rows
        assert a["n"] == 10 and a["p"] == [10.0] and a["top"] == 9.0  # 9 ms: i=2, flag set
        assert b == {"workflow": "b", "n": 3, "p": [None], "top": None, "spans": None}

    async def test_bad_queries_are_refused(self, store: DocumentStore) -> None:
        ok = Aggregation("runs", (Key("k", "wf"),), (Measure("n", "count"),))
        with pytest.raises(ValueError, match="unscoped"):
            await store.aggregate("", ok)
        bad = [
            Aggregation("runs", (Key("k", "wf; drop"),), (Measure("n", "count"),)),
            Aggregation("runs", (Key("K", "wf"),), (Measure("n", "count"),)),
            Aggregation("runs", (Key("k", "wf"),), ()),
            Aggregation("runs", (Key("k", "wf"),), (Measure("n", "sum"),)),
            Aggregation("runs", (Key("k", "wf"),), (Measure("n", "percentiles", "ms", ps=(1.5,)),)),
            Aggregation("runs", (Key("k", "wf"),), (Measure("n", "count"),), order=(("zz", 1),)),
            Aggregation("runs", (Key("k", "wf"),), (Measure("n", "count"),), limit=0),
        ]
        for spec in bad:
            with pytest.raises(ValueError):
                await store.aggregate("t1", spec)


def _fields(spec: Aggregation) -> dict[str, object]:
    return {name: getattr(spec, name) for name in Aggregation.__dataclass_fields__}


INDEXES = [IndexSpec("runs", ("wf", "at")), IndexSpec("steps", ("run_id", "step"))]


class TestSQLiteAggregate(AggregateContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[DocumentStore]:
        store = open_store(f"sqlite:///{tmp_path}/docs.db")
        await store.ensure_indexes(INDEXES)
        yield store
        await store.close()


class TestMongoAggregate(AggregateContract):
    @pytest.fixture
    async def store(self, mongo_url: str) -> AsyncIterator[DocumentStore]:
        store = open_store(mongo_url.rsplit("/", 1)[0] + f"/a{uuid.uuid4().hex[:12]}")
        await store.ensure_indexes(INDEXES)
        yield store
        await store.close()

    async def test_within_past_the_id_limit_joins_in_the_server(
        self, store: DocumentStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """More parents than ``MAX_WITHIN_IDS``: one pipeline with ``$lookup``, the same answer."""
        monkeypatch.setattr(mongo, "MAX_WITHIN_IDS", 1)
        await self.test_within_keeps_documents_of_matching_parents(store)
