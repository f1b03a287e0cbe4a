"""Document ingestion as Ray work: one task per document (extract, chunk, embed, index).

The supervisor actor submits them (:meth:`actors.supervisor.SupervisorActor.ingest`) and
re-submits any document whose heartbeat went stale — a worker, node or gateway that died
mid-way — so every upload reaches READY or FAILED. Ray retries a task whose worker process died
(``max_retries``); ingestion is idempotent, so a retry converges to the same vectors.
"""

from __future__ import annotations

from typing import Any

import ray

from actors._context import run_sync, shipped_settings

__all__ = ["ingest_document"]


@ray.remote(num_cpus=1, max_retries=3)
def ingest_document(settings_json: str, team_id: str, doc_id: str) -> dict[str, Any]:
    """Ingest one document; returns its final record (status READY or FAILED)."""
    settings = shipped_settings(settings_json)
    return run_sync(settings, lambda system: system.knowledge.ingest(team_id, doc_id))
