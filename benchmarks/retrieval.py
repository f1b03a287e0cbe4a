"""B23: retrieval at 100k and 1M chunks, each beside NumPy brute force in the same run.

    python -m benchmarks.retrieval                        # Lite 100k, server 100k and 1M
    python -m benchmarks.retrieval --parts lite           # one part (lite | server)
    python -m benchmarks.retrieval --server-rows 100000   # the server at 100k only

lite    Milvus Lite as ``linqra up`` runs it (``EmbeddedMilvus``: its server with the fast paths
        of ``linqra.vectors.lite_server``), through ``MilvusVectorStore`` with the default index
        strategy (FLAT, then IVF_FLAT once the collection passes 50k rows, decided after each
        flush). 100k chunks of the offline embedder's dimension (512) written in batches of
        5,000 with a flush after each, like B6; measured once the server's background
        compaction and index builds are done. Top-5 p50/p95 against NumPy brute force over the
        same vectors (interleaved query by query): team only, a 10 % metadata filter, one
        document (100 chunks); recall@10 against brute force for each.
server  A real Milvus 2.3.5 standalone server (PyPI ``milvus``) through the same adapter: HNSW
        (M 16, efConstruction 200). Insert, flush, index and load times, server RSS, then
        top-5 p50/p95 and recall@10 for several ``ef``, beside NumPy brute force.

Vectors: clustered, not uniform noise (uniform 512-d vectors have no neighbours worth the name;
no index beats a scan there): 2,000 centres drawn N(0, 1), each chunk a centre plus N(0, 1)
noise, normalised — a chunk's nearest neighbours sit at cosine 0.5 against 0.0 for a random
pair. Queries are drawn the same way. Seed 15. Results: benchmarks/results/retrieval.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._support import git, percentile, uptime
from linqra.config import VectorIndexSettings
from linqra.vectors import EmbeddedMilvus, MilvusVectorStore, row_key

RESULTS = Path(__file__).resolve().parent / "results" / "retrieval.json"
DIM, CENTRES, SEED, TEAM, NAME = 512, 2000, 15, "bench", "b23"
QUERIES, BATCH = 200, 5000
CATEGORIES = 10


class Corpus:
    """The vectors, generated batch by batch from the seed (the same on every run)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.centres = np.random.default_rng(SEED).standard_normal((CENTRES, DIM), np.float32)
        self.matrix = np.empty((rows, DIM), np.float32)
        for start, block in self.batches(BATCH):
            self.matrix[start : start + len(block)] = block
        self.categories = np.arange(rows) % CATEGORIES
        self.documents = np.arange(rows) // 100

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        picks = rng.integers(0, CENTRES, n)
        v = self.centres[picks] + rng.standard_normal((n, DIM), np.float32)
        unit: np.ndarray = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        return unit

    def batches(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.rows, size):
            rng = np.random.default_rng([SEED, start])
            yield start, self._draw(rng, min(size, self.rows - start))

    def queries(self) -> np.ndarray:
        return self._draw(np.random.default_rng([SEED, 10**9]), QUERIES)

    def rows_of(self, start: int, block: np.ndarray) -> list[dict[str, Any]]:
        return [
            {"id": f"c{start + i}", "vector": block[i].tolist(), "text": "chunk",
             "document_id": f"d{(start + i) // 100}", "chunk_index": (start + i) % 100,
             "category": f"c{(start + i) % CATEGORIES}", "metadata": {}}
            for i in range(len(block))
        ]  # fmt: skip


def _brute(corpus: Corpus, query: np.ndarray, k: int, select: Any) -> list[int]:
    """NumPy brute force, the baseline: the filter evaluated over the row attributes, then the
    kept rows (all, unfiltered) times the query."""
    if select is None:
        scores = corpus.matrix @ query
        top = np.argpartition(-scores, k)[:k]
        return [int(i) for i in top[np.argsort(-scores[top])]]
    rows = np.flatnonzero(select())
    scores = corpus.matrix[rows] @ query
    top = np.argpartition(-scores, min(k, len(rows) - 1))[:k]
    return [int(i) for i in rows[top[np.argsort(-scores[top])]]]


async def _measure(
    store: MilvusVectorStore, corpus: Corpus, filters: dict[str, tuple[str, Any]]
) -> dict[str, Any]:
    """Top-5 latency beside NumPy (interleaved) and recall@10, per filter."""
    queries = corpus.queries()
    out: dict[str, Any] = {}
    for label, (expr, mask) in filters.items():
        ours, numpy_ms, hits10 = [], [], 0.0
        for q in queries:
            t0 = time.perf_counter()
            await store.search(NAME, TEAM, q.tolist(), top_k=5, expr=expr,
                               output_fields=["document_id"])  # fmt: skip
            ours.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            _brute(corpus, q, 5, mask)
            numpy_ms.append((time.perf_counter() - t0) * 1000)
        for q in queries[:100]:
            got = await store.search(NAME, TEAM, q.tolist(), top_k=10, expr=expr)
            exact = {f"c{i}" for i in _brute(corpus, q, 10, mask)}
            hits10 += len(exact & {h.id for h in got}) / len(exact)
        out[label] = {
            "p50_ms": round(percentile(ours, 0.5), 2), "p95_ms": round(percentile(ours, 0.95), 2),
            "numpy_p50_ms": round(percentile(numpy_ms, 0.5), 2),
            "numpy_p95_ms": round(percentile(numpy_ms, 0.95), 2),
            "ratio_p50": round(percentile(ours, 0.5) / percentile(numpy_ms, 0.5), 2),
            "recall_at_10": round(hits10 / 100, 3),
        }  # fmt: skip
        print(f"  {label}: {out[label]}", flush=True)
    return out


def _filters(corpus: Corpus) -> dict[str, tuple[str, Any]]:
    doc = corpus.rows // 200  # a document of 100 chunks in the middle
    return {
        "team": ("", None),
        "category_10pct": ('category == "c3"', lambda: corpus.categories == 3),
        "one_document": (f'document_id == "d{doc}"', lambda: corpus.documents == doc),
    }


def _rss_mib(pid: int) -> float:
    import psutil  # type: ignore[import-untyped]

    proc = psutil.Process(pid)
    return float(round(sum(p.memory_info().rss for p in [proc, *proc.children(True)]) / 2**20))


def _lite_indexed(data_dir: Path) -> bool:
    """Every data file of the collection has its vector index sidecar (background work done)."""
    parts = list(data_dir.glob("collections/*/partitions/*"))
    data = {p.stem for part in parts for p in part.glob("data/*.parquet")}
    indexed = {p.name.split(".")[0] for part in parts for p in part.glob("indexes/*.idx")}
    return bool(data) and data <= indexed


async def lite(rows: int = 100_000) -> dict[str, Any]:
    corpus = Corpus(rows)
    tmp = Path(tempfile.mkdtemp(prefix="linqra-b23-"))
    server = EmbeddedMilvus(tmp / "milvus").start()
    store = MilvusVectorStore(server.uri)
    try:
        await store.create_collection(NAME, DIM, {"category": "string"})
        t0 = time.perf_counter()
        for start, block in corpus.batches(BATCH):
            await store.upsert(NAME, TEAM, corpus.rows_of(start, block))
            await store.flush(NAME)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        while True:
            if _lite_indexed(tmp / "milvus"):
                break
            await asyncio.sleep(0.5)
        settle_s = time.perf_counter() - t0
        plan = store._plan(store._connect(), NAME)
        print(f"B23 lite: {rows} rows in {load_s:.1f}s, indexes settled {settle_s:.1f}s later, "
              f"{plan}", flush=True)  # fmt: skip
        assert server._proc is not None
        result = {
            "rows": rows, "write_and_flush_s": round(load_s, 1),
            "background_index_s": round(settle_s, 1),
            "index": {"type": plan.index_type, **plan.params,
                      **plan.search_params(VectorIndexSettings(), 5)},
            "search": await _measure(store, corpus, _filters(corpus)),
            "server_rss_mib": _rss_mib(server._proc.pid),
        }  # fmt: skip
        return result
    finally:
        await store.close()
        server.stop()


async def _server_size(uri: str, pid: int, rows: int, efs: list[int]) -> dict[str, Any]:
    corpus = Corpus(rows)
    store = MilvusVectorStore(uri)
    client = store._connect()
    try:
        await store.create_collection(NAME, DIM, {"category": "string"})
        t0 = time.perf_counter()
        for start in range(0, rows, 10_000):  # bulk insert: the adapter's row layout
            batch = corpus.rows_of(start, corpus.matrix[start : start + 10_000])
            for r in batch:
                r.update({"team_id": TEAM, "pk": row_key(TEAM, r["id"]), "title": "",
                          "file_name": "", "page_start": 0, "page_end": 0, "created_at": 0})  # fmt: skip
            client.insert(NAME, batch)
        insert_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        client.flush(NAME)
        flush_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        while True:
            info = client.describe_index(NAME, "vector")
            if int(info.get("indexed_rows", 0)) >= rows and not int(
                info.get("pending_index_rows", 0)
            ):
                break
            await asyncio.sleep(1)
        index_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        client.release_collection(NAME)
        client.load_collection(NAME)
        load_s = time.perf_counter() - t0
        print(f"B23 server {rows}: insert {insert_s:.1f}s flush {flush_s:.1f}s index "
              f"{index_s:.1f}s load {load_s:.1f}s", flush=True)  # fmt: skip
        searches = {}
        for ef in efs:
            store.index = VectorIndexSettings(hnsw_ef=ef)
            print(f" ef {ef}", flush=True)
            searches[f"ef_{ef}"] = await _measure(store, corpus, _filters(corpus))
        return {
            "rows": rows, "index": client.describe_index(NAME, "vector"),
            "insert_s": round(insert_s, 1), "flush_s": round(flush_s, 1),
            "index_s": round(index_s, 1), "load_s": round(load_s, 1),
            "server_rss_mib": _rss_mib(pid), "search": searches,
        }  # fmt: skip
    finally:
        await store.drop_collection(NAME)
        await store.close()


def server(sizes: list[int], efs: list[int]) -> dict[str, Any]:
    from milvus import default_server  # type: ignore[import-untyped]

    out: dict[str, Any] = {}
    default_server.set_base_dir(tempfile.mkdtemp(prefix="linqra-b23-server-"))
    default_server.start()
    try:
        uri = f"http://127.0.0.1:{default_server.listen_port}"
        for rows in sizes:
            out[str(rows)] = asyncio.run(
                _server_size(uri, default_server.server_proc.pid, rows, efs)
            )
    finally:
        default_server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.retrieval")
    parser.add_argument("--parts", default="lite,server")
    parser.add_argument("--lite-rows", type=int, default=100_000)
    parser.add_argument("--server-rows", default="100000,1000000")
    parser.add_argument("--ef", default="32,64,128")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    run = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "commit": git("rev-parse", "--short", "HEAD"), "load_before": uptime(),
           "python": platform.python_version(), "cpus": 2,
           "command": "python -m benchmarks.retrieval " + " ".join(
               f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())}  # fmt: skip
    if "lite" in parts:
        results["lite"] = {**asyncio.run(lite(args.lite_rows)), "run": run}
    if "server" in parts:
        sizes = [int(n) for n in args.server_rows.split(",")]
        results["server"] = {**server(sizes, [int(e) for e in args.ef.split(",")]), "run": run}
    run["load_after"] = uptime()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
