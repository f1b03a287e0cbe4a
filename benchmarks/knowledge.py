"""Benchmarks B6 and B7 of the Knowledge Hub, each against its baseline in the same run.

    python -m benchmarks.knowledge            # both
    python -m benchmarks.knowledge b6         # one

B6  Ingestion throughput (chunks/s) of 10,000 chunks with the offline embedder through
    ``KnowledgeService.ingest`` (extract, chunk, embed, upsert, progress records) into Milvus Lite
    (``milvus-lite server`` on loopback, as ``linqra up`` runs it). Then search latency p50/p95
    at 10k and at 100k chunks, with and without a metadata filter (10 % selective), against
    the physical baseline: exact brute force over the same vectors in NumPy, same queries.
B7  Retrieval quality of the offline embedder: recall@5 over questions about the 27 amendments
    of the US Constitution (public domain; benchmarks/data), each with its known answer passage,
    against Okapi BM25 (k1 = 1.5, b = 0.75) over the same passages, in the same run.

Results are printed and written to benchmarks/results/knowledge.json.
"""

from __future__ import annotations

import asyncio
import json
import math
import platform
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._support import percentile
from linqra.config import KnowledgeSettings, Settings
from linqra.llm.embeddings import HashingEmbedder
from linqra.system import System
from linqra.vectors import EmbeddedMilvus

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parent / "data"
TEAM = "bench"


def _vocabulary(size: int, rng: random.Random) -> list[str]:
    syllables = [
        "ka",
        "lo",
        "mi",
        "ra",
        "to",
        "ne",
        "su",
        "vi",
        "de",
        "po",
        "an",
        "el",
        "or",
        "ush",
        "ti",
    ]
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def _document(rng: random.Random, words: list[str], sentences: int) -> str:
    zipf = [1 / (i + 1) for i in range(len(words))]
    out = []
    for _ in range(sentences):
        n = rng.randint(8, 18)
        out.append(" ".join(rng.choices(words, weights=zipf, k=n)).capitalize() + ".")
    return " ".join(out)


async def b6(
    total_chunks: int = 10_000, grow_to: int = 100_000, queries: int = 200
) -> dict[str, Any]:
    rng = random.Random(6)
    words = _vocabulary(8000, rng)
    tmp = Path(tempfile.mkdtemp(prefix="linqra-b6-"))
    server = EmbeddedMilvus(tmp / "milvus").start()
    settings = Settings(data_dir=tmp, knowledge=KnowledgeSettings(vector_uri=server.uri)).portable()
    system = await System.open(settings)
    hub = system.knowledge
    try:
        collection = await hub.create_collection(
            TEAM,
            {"name": "b6", "chunk_tokens": 128, "chunk_overlap": 16,
             "metadata_fields": {"category": "string"}},
        )  # fmt: skip
        # documents of about 100 chunks each, until the collection holds total_chunks
        chunks, seconds, documents = 0, 0.0, 0
        while chunks < total_chunks:
            text = _document(rng, words, 560)
            doc, _ = await hub.add_document(
                TEAM, "b6", text.encode(), file_name=f"d{documents}.txt",
                metadata={"category": f"c{documents % 10}"},
            )  # fmt: skip
            t0 = time.perf_counter()
            done = await hub.ingest(TEAM, doc["id"])
            seconds += time.perf_counter() - t0
            chunks += done["chunks_total"]
            documents += 1
        ingest = {"chunks": chunks, "documents": documents, "seconds": round(seconds, 2),
                  "chunks_per_s": round(chunks / seconds, 1)}  # fmt: skip
        print(f"B6 ingestion: {ingest}", flush=True)

        name = collection.vector_collection
        probe_texts = [_document(rng, words, 1) for _ in range(queries)]
        embedder = HashingEmbedder(collection.dimension)
        probes = [embedder.vector(t) for t in probe_texts]

        # the baseline's copy of the vectors: the same embedder over the same chunk texts
        texts: list[str] = []
        categories_list: list[str] = []
        listed, _ = await hub.list_documents(TEAM, "b6", limit=10_000)
        for doc in listed:
            full = await hub.get_document(TEAM, "b6", doc["id"], chunks=True)
            texts += [c["text"] for c in full["chunks"]]
            categories_list += [doc["metadata"]["category"]] * len(full["chunks"])
        matrix = np.asarray([embedder.vector(t) for t in texts], dtype=np.float32)
        categories = np.asarray(categories_list)

        async def measure(label: str) -> dict[str, Any]:
            out: dict[str, Any] = {"rows": int(matrix.shape[0])}
            for flt in (None, "c3"):
                milvus_ms, numpy_ms = [], []
                for probe in probes:  # interleaved: the same machine state for both
                    t0 = time.perf_counter()
                    await hub.vectors.search(
                        name, TEAM, probe, top_k=5, expr=f'category == "{flt}"' if flt else "",
                        output_fields=["document_id"],
                    )  # fmt: skip
                    milvus_ms.append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    q = np.asarray(probe, dtype=np.float32)
                    subset = matrix[categories == flt] if flt else matrix
                    scores = subset @ q
                    top = np.argpartition(-scores, 5)[:5]
                    _ = top[np.argsort(-scores[top])]
                    numpy_ms.append((time.perf_counter() - t0) * 1000)
                key = "filtered" if flt else "unfiltered"
                out[key] = {
                    "milvus_p50_ms": round(percentile(milvus_ms, 0.5), 2),
                    "milvus_p95_ms": round(percentile(milvus_ms, 0.95), 2),
                    "numpy_p50_ms": round(percentile(numpy_ms, 0.5), 3),
                    "numpy_p95_ms": round(percentile(numpy_ms, 0.95), 3),
                    "ratio_p50": round(percentile(milvus_ms, 0.5) / percentile(numpy_ms, 0.5), 1),
                }
            print(f"B6 search at {label}: {out}", flush=True)
            return out

        at_10k = await measure("10k")
        # grow to 100k with random unit vectors (latency does not depend on the text)
        current = at_10k["rows"]
        batch = 5000
        t0 = time.perf_counter()
        while current < grow_to:
            n = min(batch, grow_to - current)
            vectors = (
                np.random.default_rng(current)
                .standard_normal((n, collection.dimension))
                .astype(np.float32)
            )
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            rows = [
                {"id": f"bulk-{current + i}", "vector": vectors[i].tolist(), "text": "bulk", "document_id": "bulk",
                 "chunk_index": current + i, "category": f"c{(current + i) % 10}", "metadata": {}}
                for i in range(n)
            ]  # fmt: skip
            await hub.vectors.upsert(name, TEAM, rows)
            await hub.vectors.flush(name)
            matrix = np.vstack([matrix, vectors])
            categories = np.concatenate([categories, [f"c{(current + i) % 10}" for i in range(n)]])
            current += n
        bulk_rate = (grow_to - at_10k["rows"]) / (time.perf_counter() - t0)
        at_100k = await measure("100k")
        return {"ingestion": ingest, "search_10k": at_10k, "search_100k": at_100k,
                "bulk_upsert_rows_per_s": round(bulk_rate)}  # fmt: skip
    finally:
        await system.close()
        server.stop()


_TOKEN = re.compile(r"[^\W_]+")


def _bm25(passages: list[str], k1: float = 1.5, b: float = 0.75) -> Any:
    from linqra.llm.embeddings import STOP_WORDS

    docs = [[w for w in _TOKEN.findall(p.lower()) if w not in STOP_WORDS] for p in passages]
    n = len(docs)
    avg = sum(len(d) for d in docs) / n
    df = Counter(w for d in docs for w in set(d))
    idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}
    counts = [Counter(d) for d in docs]

    def rank(query: str) -> list[int]:
        terms = [w for w in _TOKEN.findall(query.lower()) if w not in STOP_WORDS]
        scores = []
        for i, c in enumerate(counts):
            s = 0.0
            for t in terms:
                if t in c:
                    tf = c[t]
                    s += idf[t] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(docs[i]) / avg))
            scores.append(s)
        return sorted(range(n), key=lambda i: -scores[i])

    return rank


async def b7() -> dict[str, Any]:
    data = json.loads((DATA / "constitution_amendments.json").read_text())
    passages, questions = data["passages"], data["questions"]
    tmp = Path(tempfile.mkdtemp(prefix="linqra-b7-"))
    server = EmbeddedMilvus(tmp / "milvus").start()
    settings = Settings(data_dir=tmp, knowledge=KnowledgeSettings(vector_uri=server.uri)).portable()
    system = await System.open(settings)
    hub = system.knowledge
    try:
        await hub.create_collection(
            TEAM, {"name": "amendments", "metadata_fields": {"amendment": "string"}}
        )
        for p in passages:
            doc, _ = await hub.add_document(
                TEAM, "amendments", p["text"].encode(), file_name=f"amendment-{p['id']}.txt",
                metadata={"amendment": p["id"]},
            )  # fmt: skip
            assert (await hub.ingest(TEAM, doc["id"]))["status"] == "READY"
        rank = _bm25([p["text"] for p in passages])
        ours = bm25 = 0
        misses = []
        for item in questions:
            hits = await hub.search(TEAM, "amendments", query=item["q"], top_k=5)
            top = [h["metadata"]["amendment"] for h in hits]
            ours += item["answer"] in top
            if item["answer"] not in top:
                misses.append(item["q"])
            bm25 += item["answer"] in [passages[i]["id"] for i in rank(item["q"])[:5]]
        n = len(questions)
        return {
            "questions": n,
            "passages": len(passages),
            "recall_at_5_offline_embedder": round(ours / n, 3),
            "recall_at_5_bm25": round(bm25 / n, 3),
            "ratio": round((ours / n) / (bm25 / n), 3) if bm25 else None,
            "missed_by_embedder": misses,
        }
    finally:
        await system.close()
        server.stop()


def main() -> None:
    which = set(sys.argv[1:]) or {"b6", "b7"}
    results: dict[str, Any] = {"machine": {"cpus": 2, "python": platform.python_version()}}
    if "b7" in which:
        results["B7"] = asyncio.run(b7())
        print("B7", json.dumps(results["B7"]), flush=True)
    if "b6" in which:
        results["B6"] = asyncio.run(b6())
        print("B6", json.dumps(results["B6"]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "knowledge.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    previous.update(results)
    path.write_text(json.dumps(previous, indent=2) + "\n")


if __name__ == "__main__":
    main()
