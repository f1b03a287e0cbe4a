"""Which vector index a collection gets, and when it is rebuilt (``knowledge.vector_index``).

On **Milvus Lite** (the embedded default) every index is per segment and built by the server in
the background after a flush or a compaction; a search over a segment without one is exact brute
force. The plan by collection size (``kind: auto``):

- below ``flat_max_rows`` rows (50k): ``FLAT``, exact, nothing to build or train; at 50k rows a
  top-5 search costs about what NumPy brute force over the same vectors costs;
- from there ``IVF_FLAT`` with ``nlist = 4*sqrt(rows)`` lists (k-means, trained per segment), a
  search scanning ``nprobe = nlist x ivf_probe_fraction`` of them (1/16: recall@10 ≥ 0.95 on
  clustered vectors, see docs/benchmarks.md B23). The index is rebuilt when the collection has
  grown (or shrunk) 4x from the size it was built for, so ``nlist`` follows sqrt(rows); it goes back
  to ``FLAT`` below half of ``flat_max_rows``.

The decision is taken after a flush — after a document's last batch — never per insert, from the
row count the server reports; :func:`decide` says what to (re)build, if anything.

On a **Milvus server** the plan is ``HNSW`` from the start (``M``, ``efConstruction``, and ``ef``
at search time, at least ``top_k``): the server builds it per sealed segment on its own, so it
is never rebuilt here.

``kind: flat | ivf_flat | hnsw`` pins one index type on either backend (IVF_FLAT still follows
the row count).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from linqra.config import VectorIndexSettings

__all__ = [
    "Backend",
    "IndexPlan",
    "backend_of",
    "completed",
    "current_plan",
    "decide",
    "maintain",
    "plan_for",
]

Backend = Literal["lite", "server"]
GROWTH = 4  # IVF_FLAT is rebuilt when the collection grew or shrank this much since its build
MIN_NLIST = 16

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IndexPlan:
    """One vector index: its type and build parameters (``params``)."""

    index_type: Literal["FLAT", "IVF_FLAT", "HNSW", "AUTOINDEX"]
    params: dict[str, int] = field(default_factory=dict)

    def index_params(self, client: Any, metric: str = "COSINE") -> Any:
        """pymilvus ``IndexParams`` for ``create_index`` / ``create_collection``."""
        index = client.prepare_index_params()
        index.add_index(
            "vector", index_type=self.index_type, metric_type=metric, params=dict(self.params)
        )
        return index

    def search_params(self, settings: VectorIndexSettings, top_k: int) -> dict[str, int]:
        """The engine parameters of a search (``nprobe`` for IVF_FLAT, ``ef`` for HNSW)."""
        if self.index_type == "IVF_FLAT":
            nlist = self.params.get("nlist", MIN_NLIST)
            return {"nprobe": max(1, min(nlist, math.ceil(nlist * settings.ivf_probe_fraction)))}
        if self.index_type == "HNSW":
            return {"ef": max(settings.hnsw_ef, top_k)}
        return {}

    @property
    def built_for(self) -> int:
        """The row count an IVF_FLAT index's ``nlist`` was chosen for."""
        return (self.params.get("nlist", MIN_NLIST) // 4) ** 2


def backend_of(server_version: str) -> Backend:
    """``lite`` for Milvus Lite (its version reads ``milvus_lite-3.2.2``), else ``server``."""
    return "lite" if server_version.lower().startswith("milvus_lite") else "server"


def _ivf(rows: int) -> IndexPlan:
    return IndexPlan("IVF_FLAT", {"nlist": max(MIN_NLIST, round(4 * math.sqrt(max(rows, 1))))})


def plan_for(rows: int, backend: Backend, settings: VectorIndexSettings) -> IndexPlan:
    """The index a collection of ``rows`` rows should have."""
    kind = settings.kind
    if kind == "auto":
        if backend == "server":
            kind = "hnsw"
        else:
            kind = "flat" if rows < settings.flat_max_rows else "ivf_flat"
    if kind == "hnsw":
        return IndexPlan(
            "HNSW", {"M": settings.hnsw_m, "efConstruction": settings.hnsw_ef_construction}
        )
    if kind == "ivf_flat":
        return _ivf(rows)
    return IndexPlan("FLAT")


def decide(
    current: IndexPlan, rows: int, backend: Backend, settings: VectorIndexSettings
) -> IndexPlan | None:
    """The index to rebuild ``current`` as, now that the collection has ``rows`` rows; None to
    keep it. Hysteresis: IVF_FLAT → FLAT only below half of ``flat_max_rows``, and an IVF_FLAT
    index is kept until the collection grew or shrank :data:`GROWTH` x from its build size."""
    want = plan_for(rows, backend, settings)
    if want.index_type == current.index_type:
        if want.index_type != "IVF_FLAT":
            return None
        built_for = max(current.built_for, 1)
        return want if rows >= GROWTH * built_for or rows * GROWTH < built_for else None
    if (
        settings.kind == "auto"
        and current.index_type == "IVF_FLAT"
        and want.index_type == "FLAT"
        and rows >= settings.flat_max_rows // 2
    ):
        return None
    if backend == "server" and settings.kind == "auto" and current.index_type != "FLAT":
        return None  # a server's index (made here or by hand) is its operator's
    return want


def completed(current: IndexPlan, known: IndexPlan | None, rows: int) -> IndexPlan:
    """``current`` with its build parameters when the server does not report them (Milvus Lite
    reports none): those of ``known`` for the same type, else, for IVF_FLAT, those chosen for
    ``rows`` (so the index is kept, and searched with an ``nprobe`` at most 2x off)."""
    if current.params or current.index_type != "IVF_FLAT":
        return current
    if known is not None and known.index_type == current.index_type and known.params:
        return known
    return _ivf(rows)


def current_plan(description: dict[str, Any]) -> IndexPlan:
    """The plan of an index as ``MilvusClient.describe_index`` reports it."""
    kind = str(description.get("index_type", "AUTOINDEX")).upper()
    params: dict[str, int] = {}
    raw = description.get("params")
    source = raw if isinstance(raw, dict) else description
    for key in ("nlist", "M", "efConstruction"):
        if key in source:
            params[key] = int(source[key])
    if kind not in ("FLAT", "IVF_FLAT", "HNSW"):
        kind = "AUTOINDEX"
    return IndexPlan(kind, params)  # type: ignore[arg-type]


def maintain(
    client: Any,
    name: str,
    backend: Backend,
    settings: VectorIndexSettings,
    known: IndexPlan | None = None,
) -> IndexPlan:
    """After a flush: rebuild the collection's index if :func:`decide` says so; its plan now.
    ``known`` is the plan this process last built or saw (see :func:`completed`).

    Rebuilding is release → drop → create (built inline by Milvus Lite: searches wait for it
    rather than fail) → load. Another process rebuilding at the same moment makes one of the
    two fail: that one keeps the index it finds and tries again after its next flush.
    """
    rows = int(client.get_collection_stats(name).get("row_count", 0))
    current = completed(current_plan(client.describe_index(name, "vector")), known, rows)
    want = decide(current, rows, backend, settings)
    if want is None:
        return current
    log.info("rebuilding %s's vector index: %s → %s (%d rows)", name, current, want, rows)
    try:
        client.release_collection(name)
        client.drop_index(name, "vector")
        client.create_index(name, want.index_params(client))
    except Exception as exc:  # a concurrent rebuild, most likely: keep what is there
        log.info("vector index of %s not rebuilt (%r); next flush tries again", name, exc)
        client.load_collection(name)
        return current_plan(client.describe_index(name, "vector"))
    client.load_collection(name)
    return want
