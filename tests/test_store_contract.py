"""One contract suite for the document store port, run against SQLite and MongoDB (SecantusDB)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from linqra.errors import Conflict, ValidationError
from linqra.store import DocumentStore, IndexSpec, open_store

INDEXES = [IndexSpec("things", ("kind", "n")), IndexSpec("things", ("slug",), unique=True)]


class DocumentStoreContract:
    async def test_insert_get_is_team_scoped(self, store: DocumentStore) -> None:
        await store.insert(
            "things", "t1", {"id": "a", "kind": "x", "n": 1, "slug": "a", "nested": {"k": [1, 2]}}
        )
        got = await store.get("things", "t1", "a")
        assert got == {
            "id": "a",
            "kind": "x",
            "n": 1,
            "slug": "a",
            "nested": {"k": [1, 2]},
            "team_id": "t1",
        }
        assert await store.get("things", "t2", "a") is None
        assert await store.find("things", "t2") == []
        assert await store.count("things", "t2") == 0

    async def test_unscoped_calls_are_impossible(self, store: DocumentStore) -> None:
        for call in (
            store.get("things", "", "a"),
            store.find("things", ""),
            store.count("things", ""),
            store.insert("things", "", {"id": "z"}),
            store.update("things", "", "a", {"n": 1}),
            store.delete("things", "", "a"),
        ):
            with pytest.raises(ValueError, match="unscoped"):
                await call

    async def test_duplicates_conflict(self, store: DocumentStore) -> None:
        await store.insert("things", "t1", {"id": "a", "slug": "s1"})
        with pytest.raises(Conflict):
            await store.insert("things", "t1", {"id": "a", "slug": "s2"})
        with pytest.raises(Conflict):
            await store.insert("things", "t1", {"id": "b", "slug": "s1"})
        assert await store.count("things", "t1") == 1

    async def test_find_filters_sort_and_paginate(self, store: DocumentStore) -> None:
        for i in range(10):
            await store.insert(
                "things",
                "t1",
                {
                    "id": f"d{i}",
                    "slug": f"s{i}",
                    "kind": "even" if i % 2 == 0 else "odd",
                    "n": i,
                    "at": f"2026-01-0{i}T00:00:00Z",
                    "flag": i < 3,
                    "meta": {"rank": 10 - i},
                },
            )
        await store.insert("things", "t2", {"id": "other", "slug": "o", "kind": "even", "n": 0})
        evens = await store.find("things", "t1", {"kind": "even"}, sort=[("n", -1)])
        assert [d["n"] for d in evens] == [8, 6, 4, 2, 0]
        page = await store.find("things", "t1", {}, sort=[("n", 1)], limit=3, skip=3)
        assert [d["n"] for d in page] == [3, 4, 5]
        assert [
            d["n"] for d in await store.find("things", "t1", {"n": {"$gte": 7}}, sort=[("n", 1)])
        ] == [7, 8, 9]
        assert [
            d["n"]
            for d in await store.find("things", "t1", {"n": {"$in": [1, 5, 99]}}, sort=[("n", 1)])
        ] == [1, 5]
        assert (
            await store.count("things", "t1", {"n": {"$nin": [0, 1]}, "kind": {"$ne": "odd"}}) == 4
        )
        assert await store.count("things", "t1", {"flag": True}) == 3
        assert await store.count("things", "t1", {"at": {"$lt": "2026-01-03"}}) == 3
        assert await store.count("things", "t1", {"meta.rank": {"$lte": 2}}) == 2
        assert await store.count("things", "t1", {"missing": None}) == 10

    async def test_update_is_compare_and_set(self, store: DocumentStore) -> None:
        await store.insert("things", "t1", {"id": "a", "slug": "a", "status": "PENDING", "n": 1})
        assert await store.update(
            "things", "t1", "a", {"status": "RUNNING"}, where={"status": "PENDING"}
        )
        assert not await store.update(
            "things", "t1", "a", {"status": "RUNNING"}, where={"status": "PENDING"}
        )
        assert not await store.update("things", "t2", "a", {"status": "X"})
        assert not await store.update("things", "t1", "nope", {"status": "X"})
        got = await store.get("things", "t1", "a")
        assert got is not None and got["status"] == "RUNNING" and got["n"] == 1

    async def test_concurrent_compare_and_set_has_one_winner(self, store: DocumentStore) -> None:
        await store.insert("things", "t1", {"id": "a", "slug": "a", "owner": None})
        results = await asyncio.gather(
            *(
                store.update("things", "t1", "a", {"owner": f"r{i}"}, where={"owner": None})
                for i in range(8)
            )
        )
        assert sum(results) == 1

    async def test_delete(self, store: DocumentStore) -> None:
        await store.insert("things", "t1", {"id": "a", "slug": "a"})
        assert not await store.delete("things", "t2", "a")
        assert await store.delete("things", "t1", "a")
        assert not await store.delete("things", "t1", "a")

    async def test_scan_all_teams_is_the_only_cross_team_read(self, store: DocumentStore) -> None:
        await store.insert("things", "t1", {"id": "a", "slug": "a", "status": "RUNNING"})
        await store.insert("things", "t2", {"id": "b", "slug": "b", "status": "RUNNING"})
        found = await store.scan_all_teams("things", {"status": "RUNNING"})
        assert sorted((d["id"], d["team_id"]) for d in found) == [("a", "t1"), ("b", "t2")]

    async def test_bad_filters_are_validation_errors(self, store: DocumentStore) -> None:
        with pytest.raises(ValidationError):
            await store.find("things", "t1", {"n": {"$where": "1"}})
        with pytest.raises(ValidationError):
            await store.find("things", "t1", {"bad field": 1})


class TestSQLiteStore(DocumentStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[DocumentStore]:
        store = open_store(f"sqlite:///{tmp_path}/docs.db")
        await store.ensure_indexes(INDEXES)
        await store.ensure_indexes(INDEXES)  # idempotent
        yield store
        await store.close()

    async def test_indexes_are_used(self, store: DocumentStore, tmp_path: Path) -> None:
        import sqlite3

        await store.insert("things", "t1", {"id": "a", "slug": "a", "kind": "x", "n": 1})
        conn = sqlite3.connect(tmp_path / "docs.db")
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT data FROM c_things WHERE team_id = ? AND json_extract(data, '$.kind') = ?",
            ("t1", "x"),
        ).fetchall()
        assert "ix_things_kind_n" in str(plan)

    async def test_two_processes_share_the_file(self, store: DocumentStore, tmp_path: Path) -> None:
        import subprocess
        import sys

        code = (
            "import asyncio; from linqra.store import open_store\n"
            f"s = open_store('sqlite:///{tmp_path}/docs.db')\n"
            "async def main():\n"
            "    await asyncio.gather(*(s.insert('things', 't1', {'id': f'p{i}', 'slug': f'p{i}'}) for i in range(50)))\n"
            "asyncio.run(main())\n"
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", code.replace("p{i}", f"p{k}-{{i}}")])
            for k in range(3)
        ]
        await asyncio.gather(
            *(store.insert("things", "t1", {"id": f"m{i}", "slug": f"m{i}"}) for i in range(50))
        )
        assert [p.wait(60) for p in procs] == [0, 0, 0]
        assert await store.count("things", "t1") == 200


class TestMongoStore(DocumentStoreContract):
    @pytest.fixture
    async def store(self, mongo_url: str) -> AsyncIterator[DocumentStore]:
        url = mongo_url.rsplit("/", 1)[0] + f"/t{uuid.uuid4().hex[:12]}"
        store = open_store(url)
        await store.ensure_indexes(INDEXES)
        await store.ensure_indexes(INDEXES)
        yield store
        await store.close()


def test_unknown_store_url() -> None:
    with pytest.raises(ValueError, match="no document store for 'postgres'"):
        open_store("postgres://x")
