"""The Milvus adapter against a real Milvus standalone server (PyPI ``milvus`` 2.3.5, the newest
Linux build; ``tests/support/milvus_server.py``): the vector store contract that Milvus Lite
passes, and what differs on a server — the HNSW index, search breadth ``ef``, and unset fields
on a server without nullable fields (before 2.5). Then the index strategy on Milvus Lite (FLAT,
then IVF_FLAT after the flush that crosses the threshold) and its search fast paths against
exact brute force."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from linqra.config import VectorIndexSettings
from linqra.vectors import MilvusVectorStore, VectorStore
from linqra.vectors.index import IndexPlan, decide
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


def test_the_plan_follows_the_collection_size_with_hysteresis() -> None:
    lite = VectorIndexSettings(flat_max_rows=1000)
    flat, ivf = IndexPlan("FLAT"), IndexPlan("IVF_FLAT", {"nlist": 126})  # built for ~1000
    assert decide(flat, 999, "lite", lite) is None
    assert decide(flat, 1000, "lite", lite) == ivf
    assert decide(ivf, 3843, "lite", lite) is None  # grown less than 4x
    assert decide(ivf, 3844, "lite", lite) == IndexPlan("IVF_FLAT", {"nlist": 248})
    assert decide(ivf, 500, "lite", lite) is None  # above half the threshold: kept
    assert decide(ivf, 499, "lite", lite) == flat
    hnsw = IndexPlan("HNSW", {"M": 16, "efConstruction": 200})
    assert decide(flat, 0, "server", lite) == hnsw
    assert decide(hnsw, 10**7, "server", lite) is None  # a server's index is never rebuilt
    assert decide(IndexPlan("AUTOINDEX"), 5, "server", lite) is None
    assert ivf.search_params(lite, top_k=5) == {"nprobe": 8}
    assert hnsw.search_params(lite, top_k=500) == {"ef": 500}


async def test_a_lite_collection_is_flat_then_ivf_flat_from_the_flush_that_crosses_the_threshold(
    milvus_uri: str,
) -> None:
    settings = VectorIndexSettings(flat_max_rows=300, ivf_probe_fraction=1.0)
    store = MilvusVectorStore(milvus_uri, index=settings)
    name, t = f"grow_{uuid.uuid4().hex[:12]}", team()
    vectors = _vectors(1300, seed=1)
    await store.create_collection(name, DIM, FIELDS)
    try:
        client = store._connect()
        await store.upsert(name, t, [row(f"r{i}", vectors[i].tolist()) for i in range(200)])
        await store.flush(name)
        assert client.describe_index(name, "vector")["index_type"] == "FLAT"
        await store.upsert(name, t, [row(f"r{i}", vectors[i].tolist()) for i in range(200, 400)])
        assert client.describe_index(name, "vector")["index_type"] == "FLAT"  # not per insert
        await store.flush(name)
        assert client.describe_index(name, "vector")["index_type"] == "IVF_FLAT"
        assert store._plan(client, name) == IndexPlan("IVF_FLAT", {"nlist": 80})
        await store.upsert(name, t, [row(f"r{i}", vectors[i].tolist()) for i in range(400, 1300)])
        await store.flush(name)
        assert store._plan(client, name) == IndexPlan("IVF_FLAT", {"nlist": 80})  # < 4x
        hits = await store.search(name, t, vectors[7].tolist(), top_k=10)
        exact = np.argsort(-(vectors @ vectors[7]))[:10]
        assert [h.id for h in hits] == [f"r{i}" for i in exact]
    finally:
        await store.drop_collection(name)
        await store.close()


async def test_lite_search_sees_the_newest_rows_without_deleted_ones_as_brute_force_does(
    milvus_uri: str,
) -> None:
    """The fast paths' cached visibility: replaced rows show their new vector, deleted rows are
    gone, a new flush or delete changes the answer; with and without a filter."""
    store = MilvusVectorStore(milvus_uri, index=VectorIndexSettings(flat_max_rows=10**6))
    name, t = f"visible_{uuid.uuid4().hex[:12]}", team()
    first, second = _vectors(600, seed=2), _vectors(600, seed=3)
    await store.create_collection(name, DIM, FIELDS)
    try:
        for start in (0, 300):  # two segments
            batch = [row(f"r{i}", first[i].tolist(), year=i % 4) for i in range(start, start + 300)]
            await store.upsert(name, t, batch)
            await store.flush(name)
        current = first.copy()
        live = np.ones(600, dtype=bool)
        probe = _vectors(1, seed=4)[0]

        async def agrees(expr: str, keep: np.ndarray) -> None:
            hits = await store.search(name, t, probe.tolist(), top_k=10, expr=expr)
            scores = np.where(live & keep, current @ probe, -np.inf)
            assert [h.id for h in hits] == [f"r{i}" for i in np.argsort(-scores)[:10]]

        years = np.arange(600) % 4
        await agrees("", np.ones(600, dtype=bool))
        await agrees("year == 1", years == 1)
        replaced = list(range(0, 600, 7))
        await store.upsert(
            name, t, [row(f"r{i}", second[i].tolist(), year=i % 4) for i in replaced]
        )
        await store.flush(name)
        current[replaced] = second[replaced]
        await agrees("", np.ones(600, dtype=bool))
        await store.delete(name, t, "year == 2")
        await store.flush(name)
        live &= years != 2
        await agrees("", np.ones(600, dtype=bool))
        await agrees("year <= 2", years <= 2)
    finally:
        await store.drop_collection(name)
        await store.close()


def _vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
