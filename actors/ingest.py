"""Document ingestion as Ray work: one task per document (extract, chunk, embed, index).

The runner actor submits them (:meth:`actors.runner.RunnerActor.ingest`) and re-submits any
document whose heartbeat went stale — a worker, node or gateway that died mid-way — so every
upload reaches READY or FAILED. Ray retries a task whose worker process died (``max_retries``);
ingestion is idempotent, so a retry converges to the same vectors.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray

from linqra.config import Settings
from linqra.system import System

__all__ = ["ingest_document"]


@ray.remote(num_cpus=1, max_retries=3)
def ingest_document(settings_json: str, team_id: str, doc_id: str) -> dict[str, Any]:
    """Ingest one document; returns its final record (status READY or FAILED)."""
    settings = Settings.model_validate_json(settings_json)

    async def run() -> dict[str, Any]:
        system = await System.open(settings, init=False)
        try:
            return await system.knowledge.ingest(team_id, doc_id)
        finally:
            await system.close()

    return asyncio.run(run())
