"""The vector store contract (:class:`linqra.vectors.VectorStore`), run on Milvus Lite (the
``milvus-lite server`` that ``linqra up`` starts, reached by URI like a Milvus cluster).

Each test works in a team of its own inside one shared collection (team scoping is part of the
contract, and a collection costs a second or two to create); reads after a write wait for the
write to become visible, as the contract allows a backend's bounded staleness."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from linqra.vectors import FieldType, MilvusVectorStore, VectorStore, VectorStoreError
from tests.support.servers import free_port

DIM = 4
FIELDS: dict[str, FieldType] = {"lang": "string", "year": "int"}


def row(id_: str, vector: list[float], **fields: Any) -> dict[str, Any]:
    return {"id": id_, "vector": vector, "text": f"text of {id_}", **fields}


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Wait until ``check()`` holds (a backend may show a write after bounded staleness)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "the write never became visible"
        await asyncio.sleep(0.05)


def team() -> str:
    return f"team-{uuid.uuid4().hex[:10]}"


class VectorStoreContract:
    """Fixtures: ``vectors`` (a store), ``collection`` (created with DIM and FIELDS),
    ``unreachable`` (a store whose backend does not answer)."""

    async def test_create_collection_is_idempotent(self, vectors: VectorStore) -> None:
        name = f"c_{uuid.uuid4().hex[:12]}"
        t = team()
        await vectors.create_collection(name, DIM, FIELDS)
        try:
            await vectors.upsert(name, t, [row("a", [1, 0, 0, 0])])
            await vectors.create_collection(name, DIM, FIELDS)  # kept as it is
            await eventually(lambda: self._count_is(vectors, name, t, 1))
        finally:
            await vectors.drop_collection(name)

    async def test_drop_collection_removes_every_teams_rows_and_a_missing_one_is_a_no_op(
        self, vectors: VectorStore
    ) -> None:
        name = f"c_{uuid.uuid4().hex[:12]}"
        t1, t2 = team(), team()
        await vectors.create_collection(name, DIM, FIELDS)
        await vectors.upsert(name, t1, [row("a", [1, 0, 0, 0])])
        await vectors.upsert(name, t2, [row("b", [0, 1, 0, 0])])
        await eventually(lambda: self._count_is(vectors, name, t2, 1))
        await vectors.drop_collection(name)
        await vectors.drop_collection(name)
        await vectors.create_collection(name, DIM, FIELDS)
        try:
            assert await vectors.count(name, t1) == 0 and await vectors.count(name, t2) == 0
        finally:
            await vectors.drop_collection(name)

    async def test_upsert_inserts_or_replaces_the_teams_rows_by_id(
        self, vectors: VectorStore, collection: str
    ) -> None:
        t = team()
        await vectors.upsert(
            collection,
            t,
            [
                row("a", [1, 0, 0, 0], lang="en", year=2001, metadata={"tags": ["x"]}),
                row("b", [0, 1, 0, 0]),
            ],
        )
        await vectors.upsert(collection, t, [row("a", [0, 0, 1, 0], lang="la", text="second")])
        await eventually(lambda: self._text_of(vectors, collection, t, "a", "second"))
        assert await vectors.count(collection, t) == 2
        [a] = await vectors.query(
            collection, t, 'id == "a"', output_fields=["text", "lang", "year", "metadata"]
        )
        assert a["text"] == "second" and a["lang"] == "la"
        assert a["year"] is None and not a["metadata"]  # replaced whole, not merged
        [b] = await vectors.query(collection, t, 'id == "b"', output_fields=["text"])
        assert b["text"] == "text of b"

    async def test_an_upsert_never_replaces_another_teams_row(
        self, vectors: VectorStore, collection: str
    ) -> None:
        mine, theirs = team(), team()
        await vectors.upsert(collection, mine, [row("same-id", [1, 0, 0, 0], text="mine")])
        await eventually(lambda: self._count_is(vectors, collection, mine, 1))
        await vectors.upsert(collection, theirs, [row("same-id", [0, 1, 0, 0], text="theirs")])
        await eventually(lambda: self._count_is(vectors, collection, theirs, 1))
        assert await vectors.query(collection, mine, output_fields=["text"]) == [
            {"id": "same-id", "text": "mine"}
        ]

    async def test_reads_and_deletes_see_only_the_teams_rows(
        self, vectors: VectorStore, collection: str
    ) -> None:
        owner, other = team(), team()
        await vectors.upsert(collection, owner, [row("o1", [1, 0, 0, 0], lang="en")])
        await eventually(lambda: self._count_is(vectors, collection, owner, 1))
        assert await vectors.count(collection, other) == 0
        assert await vectors.query(collection, other, 'lang == "en"') == []
        assert await vectors.search(collection, other, [1, 0, 0, 0], top_k=5) == []
        await vectors.delete(collection, other, 'id == "o1"')
        assert await vectors.count(collection, owner) == 1

    async def test_search_returns_the_top_k_nearest_first_with_cosine_scores_and_output_fields(
        self, vectors: VectorStore, collection: str
    ) -> None:
        t = team()
        await vectors.upsert(
            collection,
            t,
            [
                row("far", [-1, 0, 0, 0]),
                row("same", [2, 0, 0, 0], lang="en"),
                row("half", [1, 1, 0, 0], lang="la"),
                row("orthogonal", [0, 0, 1, 0]),
            ],
        )
        await eventually(lambda: self._count_is(vectors, collection, t, 4))
        hits = await vectors.search(
            collection, t, [1, 0, 0, 0], top_k=2, output_fields=["text", "lang"]
        )
        assert [h.id for h in hits] == ["same", "half"]
        assert [h.score for h in hits] == pytest.approx([1.0, 2**-0.5], abs=1e-4)
        assert hits[0].fields == {"text": "text of same", "lang": "en"}

    async def test_expr_filters_search_query_count_and_delete(
        self, vectors: VectorStore, collection: str
    ) -> None:
        t = team()
        await vectors.upsert(
            collection,
            t,
            [
                row(
                    f"r{i}",
                    [1, i, 0, 0],
                    lang="en" if i % 2 else "la",
                    year=1990 + i,
                    document_id=f"doc-{i % 3}",
                    chunk_index=i,
                )
                for i in range(6)
            ],
        )
        await eventually(lambda: self._count_is(vectors, collection, t, 6))
        assert await vectors.count(collection, t, 'lang == "en" and year >= 1993') == 2
        assert await vectors.count(collection, t, 'document_id in ["doc-0", "doc-1"]') == 4
        rows = await vectors.query(collection, t, "chunk_index < 2", output_fields=["year"])
        assert sorted(r["year"] for r in rows) == [1990, 1991]
        hits = await vectors.search(collection, t, [1, 0, 0, 0], top_k=6, expr='lang == "la"')
        assert sorted(h.id for h in hits) == ["r0", "r2", "r4"]
        await vectors.delete(collection, t, 'document_id == "doc-0"')
        await eventually(lambda: self._count_is(vectors, collection, t, 4))
        assert await vectors.count(collection, t, 'document_id == "doc-0"') == 0

    async def test_an_empty_expr_matches_all_of_the_teams_rows(
        self, vectors: VectorStore, collection: str
    ) -> None:
        t = team()
        await vectors.upsert(collection, t, [row(f"e{i}", [1, 0, i, 0]) for i in range(3)])
        await eventually(lambda: self._count_is(vectors, collection, t, 3))
        assert len(await vectors.query(collection, t)) == 3
        assert len(await vectors.search(collection, t, [1, 0, 0, 0], top_k=10)) == 3

    async def test_query_returns_at_most_limit_rows_each_with_id_and_the_output_fields(
        self, vectors: VectorStore, collection: str
    ) -> None:
        t = team()
        await vectors.upsert(collection, t, [row(f"q{i}", [1, i, 0, 0], year=i) for i in range(5)])
        await eventually(lambda: self._count_is(vectors, collection, t, 5))
        rows = await vectors.query(collection, t, output_fields=["year"], limit=3)
        assert len(rows) == 3
        assert all(set(r) == {"id", "year"} and r["year"] == int(r["id"][1:]) for r in rows)

    async def test_a_backend_that_cannot_be_reached_is_a_vector_store_error_503(
        self, unreachable: VectorStore
    ) -> None:
        for call in (
            unreachable.create_collection("c_x", DIM, FIELDS),
            unreachable.count("c_x", "t1"),
            unreachable.upsert("c_x", "t1", [row("a", [1, 0, 0, 0])]),
        ):
            with pytest.raises(VectorStoreError) as err:
                await call
            assert err.value.status == 503

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    async def _count_is(vectors: VectorStore, name: str, team_id: str, want: int) -> bool:
        return await vectors.count(name, team_id) == want

    @staticmethod
    async def _text_of(vectors: VectorStore, name: str, team_id: str, id_: str, want: str) -> bool:
        rows = await vectors.query(name, team_id, f'id == "{id_}"', output_fields=["text"])
        return [r["text"] for r in rows] == [want]


class TestMilvusLite(VectorStoreContract):
    @pytest.fixture(scope="class")
    def collection(self, milvus_uri: str) -> Iterator[str]:
        name = f"contract_{uuid.uuid4().hex[:12]}"
        store = MilvusVectorStore(milvus_uri)
        asyncio.run(store.create_collection(name, DIM, FIELDS))
        yield name
        asyncio.run(store.drop_collection(name))
        asyncio.run(store.close())

    @pytest.fixture
    async def vectors(self, milvus_uri: str) -> AsyncIterator[VectorStore]:
        store = MilvusVectorStore(milvus_uri)
        yield store
        await store.close()

    @pytest.fixture
    async def unreachable(self) -> AsyncIterator[VectorStore]:
        store = MilvusVectorStore(f"http://127.0.0.1:{free_port()}", timeout=2)
        yield store
        await store.close()
