"""The Milvus adapter against a real Milvus standalone server (PyPI ``milvus`` 2.3.5, the newest
Linux build; ``tests/support/milvus_server.py``): the vector store contract that Milvus Lite
passes, and what differs on a server — the HNSW index, search breadth ``ef``, and unset fields
on a server without nullable fields (before 2.5)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from linqra.config import VectorIndexSettings
from linqra.vectors import MilvusVectorStore, VectorStore
from linqra.vectors.index import IndexPlan
from tests.contracts.test_vectors import DIM, FIELDS, VectorStoreContract, eventually, row, team
from tests.support.milvus_server import milvus_standalone
from tests.support.servers import free_port


@pytest.fixture(scope="session")
def milvus_server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Milvus standalone server for the session (its etcd has fixed ports)."""
    with milvus_standalone(tmp_path_factory.mktemp("milvus-server")) as uri:
        yield uri


class TestMilvusServer(VectorStoreContract):
    @pytest.fixture(scope="class")
    def collection(self, milvus_server_uri: str) -> Iterator[str]:
        name = f"contract_{uuid.uuid4().hex[:12]}"
        store = MilvusVectorStore(milvus_server_uri)
        asyncio.run(store.create_collection(name, DIM, FIELDS))
        yield name
        asyncio.run(store.drop_collection(name))
        asyncio.run(store.close())

    @pytest.fixture
    async def vectors(self, milvus_server_uri: str) -> AsyncIterator[VectorStore]:
        store = MilvusVectorStore(milvus_server_uri)
        yield store
        await store.close()

    @pytest.fixture
    async def unreachable(self) -> AsyncIterator[VectorStore]:
        store = MilvusVectorStore(f"http://127.0.0.1:{free_port()}", timeout=2)
        yield store
        await store.close()


async def test_a_server_collection_gets_hnsw_and_is_searched_with_ef_at_least_top_k(
    milvus_server_uri: str,
) -> None:
    settings = VectorIndexSettings(hnsw_m=8, hnsw_ef_construction=64, hnsw_ef=4)
    store = MilvusVectorStore(milvus_server_uri, index=settings)
    name, t, other = f"hnsw_{uuid.uuid4().hex[:12]}", team(), team()
    await store.create_collection(name, DIM, FIELDS)
    try:
        rows = [row(f"r{i}", [1, i / 50, (i % 7) / 7, 0], year=2000 + i % 10) for i in range(50)]
        await store.upsert(name, t, rows)
        await store.upsert(name, other, [row("theirs", [1, 0, 0, 0])])
        await store.flush(name)  # the index plan is checked after a flush: HNSW stays
        await eventually(lambda: _count_is(store, name, t, 50))
        client = store._connect()
        index = client.describe_index(name, "vector")
        assert (index["index_type"], int(index["M"]), int(index["efConstruction"])) == (
            "HNSW", 8, 64,
        )  # fmt: skip
        plan = store._plan(client, name)
        assert plan == IndexPlan("HNSW", {"M": 8, "efConstruction": 64})
        assert plan.search_params(settings, top_k=10) == {"ef": 10}
        hits = await store.search(name, t, [1, 0, 0, 0], top_k=10, expr="year >= 2005")
        assert len(hits) == 10 and "theirs" not in {h.id for h in hits}
        exact = sorted(
            (r for r in rows if r["year"] >= 2005),
            key=lambda r: -_cosine(r["vector"], [1, 0, 0, 0]),
        )
        assert [h.id for h in hits] == [r["id"] for r in exact[:10]]
        assert hits[0].score == pytest.approx(_cosine(exact[0]["vector"], [1, 0, 0, 0]), abs=1e-4)
        await store.delete(name, t, "year < 2005")
        await eventually(lambda: _count_is(store, name, t, 25))
        assert await store.count(name, other) == 1
    finally:
        await store.drop_collection(name)
        await store.close()


async def test_unset_fields_read_back_as_none_on_a_server_without_nullable_fields(
    milvus_server_uri: str,
) -> None:
    store = MilvusVectorStore(milvus_server_uri)
    name, t = f"unset_{uuid.uuid4().hex[:12]}", team()
    await store.create_collection(name, DIM, {**FIELDS, "score": "float", "draft": "bool"})
    try:
        await store.upsert(name, t, [row("bare", [1, 0, 0, 0])])
        await store.flush(name)
        await eventually(lambda: _count_is(store, name, t, 1))
        [bare] = await store.query(
            name, t, output_fields=["lang", "year", "score", "document_id", "metadata"]
        )
        assert bare == {"id": "bare", "lang": None, "year": None, "score": None,
                        "document_id": None, "metadata": None}  # fmt: skip
        assert await store.count(name, t, 'lang == "en"') == 0
    finally:
        await store.drop_collection(name)
        await store.close()


async def _count_is(store: VectorStore, name: str, team_id: str, want: int) -> bool:
    return await store.count(name, team_id) == want


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return float(dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5))
