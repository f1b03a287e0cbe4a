"""One contract suite for the document store port, run against SQLite and MongoDB (SecantusDB)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from linqra.errors import Conflict, StoreError, ValidationError
from linqra.store import DocumentStore, IndexSpec, open_store
from linqra.store.sqlite import SQLiteStore
from tests.support.servers import free_port

INDEXES = [IndexSpec("things", ("kind", "n")), IndexSpec("things", ("slug",), unique=True)]


@dataclasses.dataclass
class _Point:
    x: int
    y: int


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

    async def test_put_many_inserts_or_replaces_whole_documents_of_the_team(
        self, store: DocumentStore
    ) -> None:
        await store.insert("things", "t1", {"id": "a", "slug": "s1", "n": 1, "old": True})
        await store.put_many(
            "things", "t1", [{"id": "a", "slug": "s1", "n": 2}, {"id": "b", "slug": "s2", "n": 3}]
        )
        assert await store.get("things", "t1", "a") == {
            "id": "a", "slug": "s1", "n": 2, "team_id": "t1"}  # fmt: skip
        assert (await store.get("things", "t1", "b") or {}).get("n") == 3
        await store.put_many("things", "t1", [])
        # another team's id is a conflict, never an overwrite
        with pytest.raises(Conflict):
            await store.put_many("things", "t2", [{"id": "a", "slug": "x"}])
        assert (await store.get("things", "t1", "a") or {}).get("n") == 2
        assert await store.get("things", "t2", "a") is None
        with pytest.raises(Conflict):  # a unique index
            await store.put_many("things", "t1", [{"id": "c", "slug": "s1"}])
        with pytest.raises(ValueError):
            await store.put_many("things", "t1", [{"slug": "no id"}])

    async def test_put_many_with_a_condition_replaces_only_matching_documents(
        self, store: DocumentStore
    ) -> None:
        """The runner's fence: a writer with an older claim cannot overwrite a newer one's
        records; missing documents are inserted; the refused ones are named, the rest written."""
        await store.put_many("things", "t1", [
            {"id": "old", "slug": "s1", "claim": 1}, {"id": "new", "slug": "s2", "claim": 3},
        ])  # fmt: skip
        refused = await store.put_many(
            "things",
            "t1",
            [
                {"id": "new", "slug": "s2", "claim": 2, "by": "late"},
                {"id": "old", "slug": "s1", "claim": 2, "by": "second"},
                {"id": "fresh", "slug": "s3", "claim": 2},
            ],
            where={"claim": {"$lte": 2}},
        )
        assert refused == ["new"]
        assert await store.get("things", "t1", "new") == {
            "id": "new", "slug": "s2", "claim": 3, "team_id": "t1"}  # fmt: skip
        assert (await store.get("things", "t1", "old") or {}).get("by") == "second"
        assert (await store.get("things", "t1", "fresh") or {}).get("claim") == 2
        assert await store.put_many("things", "t1", [{"id": "old", "slug": "s1", "claim": 2}],
                                    where={"claim": {"$lte": 2}}) == []  # fmt: skip
        with pytest.raises(Conflict):  # another team's id stays a conflict, not a refusal
            await store.put_many(
                "things", "t2", [{"id": "old", "slug": "x", "claim": 9}], where={"claim": 1}
            )
        # the runner's own filter: a document without the field (written before it) matches None
        await store.put_many("things", "t1", [{"id": "bare", "slug": "s4"}])
        older = {"claim": {"$in": [None, 0, 1]}}
        assert await store.put_many("things", "t1", [{"id": "bare", "slug": "s4", "claim": 1}],
                                    where=older) == []  # fmt: skip
        assert await store.put_many("things", "t1", [{"id": "new", "slug": "s2", "claim": 1}],
                                    where=older) == ["new"]  # fmt: skip
        assert (await store.get("things", "t1", "old") or {}).get("claim") == 2

    async def test_in_and_nin_treat_a_missing_field_as_none(self, store: DocumentStore) -> None:
        """``None`` in an ``$in`` list matches a document without the field; ``$nin`` matches
        one unless its list holds ``None`` — in every store as in :func:`matches`."""
        for doc in ({"id": "a", "f": 1}, {"id": "b", "f": 2}, {"id": "c"}, {"id": "d", "f": None}):
            await store.insert("things", "t1", {**doc, "slug": doc["id"]})  # slug: unique

        async def ids(where: dict[str, Any]) -> list[str]:
            found = [d["id"] for d in await store.find("things", "t1", where, sort=[("id", 1)])]
            assert await store.count("things", "t1", where) == len(found)
            return found

        assert await ids({"f": {"$in": [None, 1]}}) == ["a", "c", "d"]
        assert await ids({"f": {"$in": [1]}}) == ["a"]
        assert await ids({"f": {"$nin": [1]}}) == ["b", "c", "d"]
        assert await ids({"f": {"$nin": [None, 1]}}) == ["b"]
        assert await ids({"f": {"$in": []}}) == []
        assert await ids({"f": {"$nin": []}}) == ["a", "b", "c", "d"]

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
        await store.insert("things", "t3", {"id": "c", "slug": "c", "status": "RUNNING"})
        first = await store.scan_all_teams("things", {}, sort=[("slug", -1)], limit=2)
        assert [(d["id"], d["team_id"]) for d in first] == [("c", "t3"), ("b", "t2")]

    async def test_bad_filters_are_validation_errors(self, store: DocumentStore) -> None:
        with pytest.raises(ValidationError):
            await store.find("things", "t1", {"n": {"$where": "1"}})
        with pytest.raises(ValidationError):
            await store.find("things", "t1", {"bad field": 1})

    async def test_check_passes_on_a_healthy_store(self, store: DocumentStore) -> None:
        await store.check(5)
        assert await store.find("things", "t1") == []  # the probe wrote no document

    async def test_callers_that_give_up_leave_the_store_whole_and_answering(
        self, store: DocumentStore
    ) -> None:
        """Writes whose callers time out after a few ms are applied whole or not at all, and
        the store keeps answering writes and reads afterwards."""
        rng = random.Random(7)

        async def impatient(i: int) -> None:
            doc = {"id": f"d{i}", "slug": f"s{i}", "n": i, "body": "x" * 200}
            try:
                async with asyncio.timeout(rng.uniform(0.0005, 0.01)):
                    await store.insert("things", "t1", doc)
            except (TimeoutError, StoreError):
                pass

        await asyncio.gather(*(impatient(i) for i in range(150)))
        async with asyncio.timeout(20):  # a dead writer would hang here
            await store.insert("things", "t1", {"id": "after", "slug": "after"})
            docs = await store.find("things", "t1", limit=1000)
            await store.check(5)
        assert any(d["id"] == "after" for d in docs)
        for doc in docs:
            if doc["id"] != "after":
                assert doc["body"] == "x" * 200 and doc["slug"] == f"s{doc['n']}"


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

    async def test_writer_survives_waiters_that_were_cancelled(self, tmp_path: Path) -> None:
        """The bug of issue 9: the writer answered a cancelled waiter, died with
        InvalidStateError, and every later write of the process hung."""
        store = open_store(f"sqlite:///{tmp_path}/cancelled.db")
        try:
            await store.insert("things", "t1", {"id": "warm"})
            tasks = [
                asyncio.create_task(store.insert("things", "t1", {"id": f"c{i}"}))
                for i in range(300)
            ]
            await asyncio.sleep(0)  # every write is queued
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            async with asyncio.timeout(10):
                await store.insert("things", "t1", {"id": "after"})
                assert await store.get("things", "t1", "after") is not None
        finally:
            await store.close()

    async def test_writer_survives_a_waiter_whose_event_loop_closed(self, tmp_path: Path) -> None:
        store = open_store(f"sqlite:///{tmp_path}/loops.db")
        await store.insert("things", "t1", {"id": "warm"})

        abandoned: list[asyncio.Task[None]] = []

        def abandon(i: int) -> None:  # a driver whose loop closes while its write waits
            loop = asyncio.new_event_loop()
            abandoned.append(loop.create_task(store.insert("things", "t1", {"id": f"o{i}"})))
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

        for i in range(20):
            await asyncio.to_thread(abandon, i)
        try:
            async with asyncio.timeout(10):
                await store.insert("things", "t1", {"id": "after"})
                await store.check(5)
        finally:
            await store.close()

    async def test_a_write_function_raising_anything_does_not_end_the_writer(
        self, tmp_path: Path
    ) -> None:
        store = SQLiteStore(tmp_path / "raise.db")

        def explode(conn: sqlite3.Connection) -> None:
            raise KeyboardInterrupt  # not an Exception: the old writer thread died of it

        try:
            async with asyncio.timeout(10):  # the old writer died and this waited forever
                with pytest.raises(KeyboardInterrupt):
                    await store._write(explode)
                await store.insert("things", "t1", {"id": "after"})
        finally:
            await store.close()

    async def test_a_stopped_writer_thread_is_started_again(self, tmp_path: Path) -> None:
        store = SQLiteStore(tmp_path / "restart.db")
        try:
            await store.insert("things", "t1", {"id": "a"})
            writer = store._writer.thread
            assert writer is not None
            store._writer._queue.put(None)  # the writer ends as if something had killed it
            await asyncio.to_thread(writer.join, 10)
            assert not writer.is_alive()
            async with asyncio.timeout(10):
                await store.insert("things", "t1", {"id": "b"})
                await store.check(5)
            assert store._writer.thread is not writer and store._writer.alive()
        finally:
            await store.close()

    async def test_a_file_locked_by_another_process_is_a_bounded_store_error(
        self, tmp_path: Path
    ) -> None:
        """A stuck store answers 503 within its timeout, fails the health check, and recovers
        when the lock is released."""
        path = tmp_path / "locked.db"
        store = SQLiteStore(path, timeout_seconds=0.5)
        try:
            await store.insert("things", "t1", {"id": "a"})
            holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            holder.execute("BEGIN IMMEDIATE")  # holds the write lock, as a stuck process would
            try:
                t0 = time.monotonic()
                with pytest.raises(StoreError) as caught:
                    await store.insert("things", "t1", {"id": "b"})
                assert time.monotonic() - t0 < 3
                assert caught.value.status == 503
                with pytest.raises(StoreError):
                    await store.check(0.5)
                assert await store.get("things", "t1", "a") is not None  # reads still served
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            deadline = time.monotonic() + 10
            while True:  # the writer may still be finishing its last busy wait
                try:
                    await store.insert("things", "t1", {"id": "c"})
                    break
                except StoreError:
                    assert time.monotonic() < deadline
            await store.check(2)
            assert await store.get("things", "t1", "b") is None  # the refused write left nothing
        finally:
            await store.close()

    async def test_a_file_that_cannot_be_opened_is_a_store_error_at_once(
        self, tmp_path: Path
    ) -> None:
        (tmp_path / "dir.db").mkdir()  # a directory where the file should be
        store = SQLiteStore(tmp_path / "dir.db", timeout_seconds=5)
        try:
            t0 = time.monotonic()
            with pytest.raises(StoreError, match="cannot open"):
                await store.insert("things", "t1", {"id": "a"})
            with pytest.raises(StoreError):
                await store.get("things", "t1", "a")
            with pytest.raises(StoreError):
                await store.check(2)
            assert time.monotonic() - t0 < 4
        finally:
            await store.close()

    async def test_the_text_stored_is_the_json_modules(
        self, store: DocumentStore, tmp_path: Path
    ) -> None:
        """orjson writes documents, and the text it stores is what the json module wrote: rows
        written before compare, group and index the same (an object or array field is compared
        by its stored text). Each document here takes one of the ways: orjson's text kept, or
        the json module's written where orjson's would differ."""
        docs = {
            "plain": {"ratio": 0.1 + 0.2, "at": "2026-12-07T03:16:56.000012Z", "n": -(2**63),
                      "by_number": {1: "one", 2.5: "two and a half", False: "no", None: "n"},
                      "nested": [{"a": [1, 2.5e16, None, True]}], "dash": "claude-3-e-5"},
            "beyond_ascii": {"text": 'naïve — 東京 \u2028 "quoted"'},
            "control": {"text": "tab\t del\x7f nul\x00"},
            "small_floats": {"values": [1e-05, 2.5e-07, 0.0001, 1.5e-300]},
            "big_ints": {"values": [2**70 + 1, 2**64 - 1, -(2**63) - 1]},
        }  # fmt: skip
        for doc_id, fields in docs.items():
            await store.insert("loose", "t1", {"id": doc_id, **fields})
        conn = sqlite3.connect(tmp_path / "docs.db")
        stored = dict(conn.execute("SELECT id, data FROM c_loose").fetchall())
        conn.close()
        for doc_id, fields in docs.items():
            expected = {"id": doc_id, **fields, "team_id": "t1"}
            assert stored[doc_id] == json.dumps(expected, separators=(",", ":")), doc_id
            assert await store.get("loose", "t1", doc_id) == json.loads(stored[doc_id]), doc_id

    async def test_values_read_back_as_written(self, store: DocumentStore, tmp_path: Path) -> None:
        """orjson reads documents; what it would read differently from the json module — an
        integer beyond 64 bits (orjson reads it as a float), ``NaN`` in a row the json module
        wrote — is read by json."""
        await store.insert("loose", "t1", {"id": "new", "big": 2**70 + 1, "id_like": "exe_1" * 5})
        got = await store.get("loose", "t1", "new")
        assert got is not None
        assert got["big"] == 2**70 + 1 and isinstance(got["big"], int)
        conn = sqlite3.connect(tmp_path / "docs.db")
        with conn:
            for doc_id, data in (
                ("nan", '{"id":"nan","n":NaN,"team_id":"t1"}'),
                (
                    "edge",
                    '{"id":"edge","n":[9223372036854775807,18446744073709551616],"team_id":"t1"}',
                ),
            ):
                conn.execute(
                    "INSERT INTO c_loose(id, team_id, data) VALUES (?, ?, ?)", (doc_id, "t1", data)
                )
        conn.close()
        nan = await store.get("loose", "t1", "nan")
        assert nan is not None and nan["n"] != nan["n"]  # NaN, as the json module wrote it
        edge = await store.get("loose", "t1", "edge")
        assert edge is not None and edge["n"] == [2**63 - 1, 2**64]
        assert all(isinstance(n, int) for n in edge["n"])

    async def test_a_list_or_object_beyond_ascii_is_found_as_written_now_and_before(
        self, store: DocumentStore, tmp_path: Path
    ) -> None:
        """An object or array field compares as stored text: one written now and one the json
        module wrote before (text beyond ASCII escaped) both match a filter."""
        tags = ["café", "東京"]
        await store.insert("loose", "t1", {"id": "new", "tags": tags, "n": 1})
        conn = sqlite3.connect(tmp_path / "docs.db")
        with conn:
            old = json.dumps({"id": "old", "tags": tags, "n": 2, "team_id": "t1"})
            assert "\\u00e9" in old
            conn.execute(
                "INSERT INTO c_loose(id, team_id, data) VALUES (?, ?, ?)", ("old", "t1", old)
            )
            conn.execute(
                "INSERT INTO c_loose(id, team_id, data) VALUES (?, ?, ?)",
                ("other", "t1", json.dumps({"id": "other", "tags": ["cafe"], "team_id": "t1"})),
            )
        conn.close()

        async def ids(where: dict[str, Any]) -> list[str]:
            return sorted(doc["id"] for doc in await store.find("loose", "t1", where))

        assert await ids({"tags": tags}) == ["new", "old"]
        assert await ids({"tags": {"$in": [tags, ["x"]]}}) == ["new", "old"]
        assert await ids({"tags": {"$ne": tags}}) == ["other"]
        assert await ids({"tags": {"$nin": [tags]}}) == ["other"]
        assert await store.update("loose", "t1", "old", {"n": 3}, where={"tags": tags})

    async def test_a_value_json_cannot_write_is_refused_whole(self, store: DocumentStore) -> None:
        with pytest.raises(TypeError):
            await store.insert("things", "t1", {"id": "a", "slug": "a", "when": datetime.now(UTC)})
        with pytest.raises(TypeError):
            await store.insert("things", "t1", {"id": "b", "slug": "b", "s": {1, 2}})
        with pytest.raises(TypeError):
            await store.insert("things", "t1", {"id": "c", "slug": "c", "d": _Point(1, 2)})
        assert await store.count("things", "t1") == 0


class TestMongoStore(DocumentStoreContract):
    @pytest.fixture
    async def store(self, mongo_url: str) -> AsyncIterator[DocumentStore]:
        url = mongo_url.rsplit("/", 1)[0] + f"/t{uuid.uuid4().hex[:12]}"
        store = open_store(url)
        await store.ensure_indexes(INDEXES)
        await store.ensure_indexes(INDEXES)
        yield store
        await store.close()

    async def test_no_server_is_a_store_error_in_seconds_without_the_password(self) -> None:
        url = f"mongodb://linqra:s3cret-pw@127.0.0.1:{free_port()}/nowhere"
        store = open_store(url, timeout_seconds=2, connect_timeout_seconds=0.5)
        try:
            t0 = time.monotonic()
            for call in (
                store.insert("things", "t1", {"id": "a"}),
                store.get("things", "t1", "a"),
                store.find("things", "t1"),
                store.check(1),
            ):
                with pytest.raises(StoreError) as caught:
                    await call
                assert "s3cret" not in str(caught.value) and "linqra:" not in str(caught.value)
            assert time.monotonic() - t0 < 8
        finally:
            await store.close()


def test_unknown_store_url() -> None:
    with pytest.raises(ValueError, match="no document store for 'postgres'"):
        open_store("postgres://x")
