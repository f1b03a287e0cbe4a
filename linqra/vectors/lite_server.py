"""Milvus Lite's own server with two search fast paths: ``python -m linqra.vectors.lite_server
server --data-dir DIR --host 127.0.0.1 --port P`` (what :class:`linqra.vectors.EmbeddedMilvus`
runs; the arguments are ``milvus-lite``'s).

Why. Milvus Lite 3.x is pure Python (Arrow segments, FAISS per-segment indexes, a gRPC server).
Profiled (py-spy on the server, cProfile in process) at 100k rows x 512 dimensions of one team,
a top-5 search spends its time in two places, neither of them the vector index:

1. **Visibility, rebuilt per query in Python.** Before asking any index, every search maps each
   primary key to its newest sequence number across all segments and checks every row against
   the tombstones, one dict lookup per row: 80-95 ms at 100k rows whatever the index (FLAT,
   IVF_FLAT and HNSW all measured 83-95 ms in process), about 7x NumPy brute force on its own.
   Segments are immutable, so the result only changes when the set of segments or the
   tombstones change (a flush, a compaction, a delete): here it is cached per (segments,
   tombstones) and reused while the write buffer is empty, as it is after every ``flush`` —
   the Knowledge Hub flushes after each document. With rows still unflushed the stock path runs.
2. **Brute force normalises every row on every query.** ``FLAT`` and the ad-hoc brute force
   over a segment whose index is not built yet (index builds run in the background after a
   flush or a compaction and can lag a bulk load by minutes) compute each row's norm and copy
   the whole matrix per query for ``COSINE``: 290 ms of a 378 ms FLAT search at 100k rows.
   Here each segment's inverse norms are computed once and a query is one matrix-vector product
   over the segment (over the selected rows when a filter keeps fewer than half), as NumPy brute
   force does.
3. **Selective filters through an approximate index.** IVF_FLAT (or HNSW) with a filter keeping
   few rows scans its usual share of lists and finds few of them: at 100k rows, one document's
   100 chunks came back with recall@10 0.79, a 10 % filter 0.94. A filter keeping at most
   :data:`EXACT_SHARE` of a segment's rows is searched exactly over those rows instead (what a
   Milvus server does for selective filters too). A filter's answer per segment is cached too
   (a segment never changes): 1.5 of the 6 ms of a 10 % filter in process.

Apart from 3 (exact where the stock path is approximate), results are the stock path's: same
visibility rules (newest sequence wins, a tombstone with a larger sequence hides a row), same
distance convention, same tie order. The fast paths are
installed only on the milvus-lite version they were written against (:data:`PATCHED_VERSION`);
any other version runs unchanged and logs that it does. Importing this module changes nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["PATCHED_VERSION", "install", "main"]

PATCHED_VERSION = "3.2.2"
_CACHE_ENTRIES = 64  # snapshots whose visibility masks are kept (each a bool per row)
EXACT_SHARE = 0.2  # a filter keeping at most this share of a segment's rows: exact search

log = logging.getLogger(__name__)


class _LRU:
    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)


_visible = _LRU(_CACHE_ENTRIES)  # (segments, tombstones) → one bool mask per segment
_inverse_norms = _LRU(_CACHE_ENTRIES)  # (partition, file, field) → 1/‖row‖ per row
_filtered = _LRU(4 * _CACHE_ENTRIES)  # (partition, file, rows, filter) → a bool per row


def _top_k(dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and distances of the ``k`` smallest, ascending (stable on ties, like argsort)."""
    k = min(k, dist.shape[0])
    part = np.argpartition(dist, k - 1)[:k] if k < dist.shape[0] else np.arange(dist.shape[0])
    order = part[np.lexsort((part, dist[part]))]
    return order, dist[order]


def _cosine_search(
    vectors: np.ndarray,
    inverse_norms: np.ndarray,
    queries: np.ndarray,
    top_k: int,
    valid: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force COSINE top-k in Milvus Lite's convention (distance = 1 - cos, -1/+inf pad)."""
    nq = queries.shape[0]
    ids = np.full((nq, top_k), -1, dtype=np.int64)
    dists = np.full((nq, top_k), np.inf, dtype=np.float32)
    rows = None if valid is None else np.flatnonzero(valid)
    if rows is not None and rows.size == 0:
        return ids, dists
    subset = rows is not None and rows.size * 2 < vectors.shape[0]
    for q in range(nq):
        query = queries[q]
        norm = float(np.linalg.norm(query))
        unit = query / norm if norm else query
        if subset:
            assert rows is not None
            dist = 1.0 - (vectors[rows] @ unit) * inverse_norms[rows]
            positions, best = _top_k(np.maximum(dist, 0.0), top_k)
            positions = rows[positions]
        else:
            dist = np.maximum(1.0 - (vectors @ unit) * inverse_norms, 0.0)
            if rows is not None:
                assert valid is not None
                dist[~valid] = np.inf
            positions, best = _top_k(dist, top_k)
            keep = np.isfinite(best)
            positions, best = positions[keep], best[keep]
        ids[q, : positions.size] = positions
        dists[q, : best.size] = best
    return ids, dists


def _norms_of(key: Any, vectors: np.ndarray) -> np.ndarray:
    cached: np.ndarray | None = _inverse_norms.get(key)
    if cached is None or cached.shape[0] != vectors.shape[0]:
        cached = _inverse(np.linalg.norm(vectors, axis=1))
        _inverse_norms.put(key, cached)
    return cached


def _inverse(norms: np.ndarray) -> np.ndarray:
    """1/norm per row; a zero vector keeps 1 (its cosine is 0, as the stock path scores it)."""
    return (1.0 / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def _visibility(
    segments: Sequence[Any], delta_index: Any, pk_dedup: Callable[..., Any]
) -> list[np.ndarray]:
    """Each segment's rows that are visible: the newest version of their key, not deleted."""
    tombstones: dict[Any, int] = delta_index._map
    key = (
        tuple((s.partition, s.file_path, s.num_rows) for s in segments),
        len(tombstones),
        max(tombstones.values(), default=-1),  # sequences only grow: any new delete shows
    )
    masks: list[np.ndarray] | None = _visible.get(key)
    if masks is None:
        masks = pk_dedup(segments, delta_index)
        _visible.put(key, masks)
    return masks


def _stock_visibility(segments: Sequence[Any], delta_index: Any) -> list[np.ndarray]:
    """The stock executor's rules, computed once per snapshot instead of once per query."""
    newest: dict[Any, int] = {}
    for seg in segments:
        for pk, seq in zip(seg.pks, seg.seqs.tolist(), strict=True):
            if newest.get(pk, -1) < seq:
                newest[pk] = int(seq)
    masks = []
    for seg in segments:
        mask = np.zeros(seg.num_rows, dtype=bool)
        for i, (pk, seq) in enumerate(zip(seg.pks, seg.seqs.tolist(), strict=True)):
            mask[i] = newest.get(pk) == seq and not delta_index.is_deleted(pk, seq)
        masks.append(mask)
    return masks


def install() -> bool:
    """Install the fast paths into this process's milvus-lite; False (and nothing changed) for
    a version other than :data:`PATCHED_VERSION`."""
    import milvus_lite

    if milvus_lite.__version__ != PATCHED_VERSION:
        log.warning(
            "milvus-lite %s: search fast paths written for %s are not installed",
            milvus_lite.__version__,
            PATCHED_VERSION,
        )
        return False
    from milvus_lite.engine import collection as collection_module
    from milvus_lite.index import brute_force, factory
    from milvus_lite.search import executor_indexed

    stock_search = executor_indexed.execute_search_with_index
    stock_brute_force = brute_force.BruteForceIndex

    class FastBruteForce(stock_brute_force):  # type: ignore[misc, valid-type]
        """FLAT: COSINE from cached inverse norms, no per-query copy (others as stock)."""

        __slots__ = ("_inverse",)

        def __init__(self, vectors: np.ndarray, metric: str) -> None:
            super().__init__(vectors, metric)
            self._inverse: np.ndarray | None = None

        def search(
            self,
            queries: np.ndarray,
            top_k: int,
            valid_mask: np.ndarray | None = None,
            params: dict[str, Any] | None = None,
        ) -> tuple[np.ndarray, np.ndarray]:
            if self.metric != "COSINE" or self.num_vectors == 0 or top_k <= 0:
                return super().search(queries, top_k, valid_mask, params)  # type: ignore[no-any-return]
            if self._inverse is None:
                norms = np.linalg.norm(self._vectors, axis=1)
                self._inverse = _inverse(norms)
            queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
            return _cosine_search(self._vectors, self._inverse, queries, top_k, valid_mask)

    def search(
        query_vectors: np.ndarray,
        segments: Any,
        memtable: Any,
        delta_index: Any,
        top_k: int,
        metric_type: str,
        pk_field: str,
        vector_field: str,
        partition_names: list[str] | None = None,
        compiled_filter: Any = None,
        output_fields: list[str] | None = None,
        indexed_filter_plan: Any = None,
        project_record_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        search_params: dict[str, Any] | None = None,
    ) -> list[list[dict[str, Any]]]:
        segments = tuple(segments)
        args = (query_vectors, segments, memtable, delta_index, top_k, metric_type, pk_field,
                vector_field, partition_names, compiled_filter, output_fields,
                indexed_filter_plan, project_record_fn, search_params)  # fmt: skip
        if memtable.size() or memtable.delete_index_snapshot():
            return stock_search(*args)  # type: ignore[no-any-return]  # unflushed rows
        queries = np.asarray(query_vectors, dtype=np.float32)
        queries = queries.reshape(1, -1) if queries.ndim == 1 else queries
        nq = int(queries.shape[0])
        wanted = set(partition_names) if partition_names else None
        scope = [s for s in segments if s.num_rows and (wanted is None or s.partition in wanted)]
        if nq == 0 or top_k <= 0 or not scope:
            return [[] for _ in range(nq)]
        visible = _visibility(scope, delta_index, _stock_visibility)
        if compiled_filter is not None:
            from milvus_lite.search.indexed_filter import evaluate_segment_filter

        candidates: list[list[tuple[float, int, int]]] = [[] for _ in range(nq)]
        for source, seg in enumerate(scope):
            vectors, present = seg.vector_data(vector_field)
            mask = visible[source]
            if compiled_filter is not None:  # a segment never changes: its answer neither
                key = (seg.partition, seg.file_path, seg.num_rows, compiled_filter.source,
                       compiled_filter.backend, indexed_filter_plan is None)  # fmt: skip
                kept = _filtered.get(key)
                if kept is None:
                    kept = evaluate_segment_filter(seg, compiled_filter, indexed_filter_plan)
                    kept = np.asarray(kept, dtype=bool)
                    _filtered.put(key, kept)
                mask = mask & kept
            if present is not None:
                mask = mask & present
            if not mask.any():
                continue
            valid = None if mask.all() else mask
            index = seg.indexes.get(vector_field)
            if valid is not None and mask.sum() <= EXACT_SHARE * mask.shape[0]:
                index = None  # few rows kept: scanning them is exact and cheaper than the index
            if index is None and metric_type == "COSINE":
                inverse = _norms_of((seg.partition, seg.file_path, vector_field), vectors)
                ids, dists = _cosine_search(vectors, inverse, queries, top_k, valid)
            else:
                index = index or FastBruteForce(vectors, metric_type)
                ids, dists = index.search(queries, top_k, valid_mask=valid, params=search_params)
            for q in range(nq):
                for j in range(top_k):
                    if ids[q, j] < 0:
                        break
                    candidates[q].append((float(dists[q, j]), source, int(ids[q, j])))

        if project_record_fn is not None:
            project = project_record_fn
        else:
            keep = None if output_fields is None else set(output_fields) - {pk_field}

            def project(record: dict[str, Any]) -> dict[str, Any]:
                if keep is None:
                    return {k: v for k, v in record.items() if k not in (pk_field, vector_field)}
                return {k: record[k] for k in keep if k in record}

        results = []
        for q in range(nq):
            hits = []
            for dist, source, local in sorted(candidates[q])[:top_k]:
                record = scope[source].row_to_dict(local)
                pk = record[pk_field] if pk_field in record else scope[source].pks[local]
                hits.append({"id": pk, "distance": dist, "entity": project(record)})
            results.append(hits)
        return results

    brute_force.BruteForceIndex = FastBruteForce
    factory.BruteForceIndex = FastBruteForce  # type: ignore[attr-defined]
    executor_indexed.BruteForceIndex = FastBruteForce  # type: ignore[attr-defined]
    executor_indexed.execute_search_with_index = search
    collection_module.execute_search_with_index = search  # type: ignore[attr-defined]
    return True


PARENT_CHECK_SECONDS = 1.0
"""How often the server checks that the process that started it is still there."""


def exit_with_parent(interval: float = PARENT_CHECK_SECONDS) -> None:
    """Stop this server (SIGTERM, as :meth:`EmbeddedMilvus.stop` would) once the process that
    started it is gone. ``linqra up`` stops its server on the way out, but not when it is killed
    (SIGKILL, an out-of-memory kill): the server runs in a session of its own, so nothing else
    would stop it, and it would keep its data directory and port for good."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        log.warning("the process that started this server (%d) is gone: stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    from milvus_lite.cmdline import main as milvus_lite_main

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    install()
    exit_with_parent()
    return int(milvus_lite_main(argv))


if __name__ == "__main__":
    sys.exit(main())
