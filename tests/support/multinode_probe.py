"""Where ingestion tasks ran, for the multi-node scenario: Ray's task table needs the dashboard,
which the scenario's cluster does without, so each worker process of the scenario's job notes
the node of every ingestion it starts in a JSON-lines file (``LINQRA_MULTINODE_PROBE``).

Installed by Ray in every worker of the driver's job (``runtime_env`` ``worker_process_setup_hook``
= ``tests.support.multinode_probe.install``); only the scenario uses it.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

__all__ = ["install", "read"]

ENV = "LINQRA_MULTINODE_PROBE"


def install() -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    import ray

    from linqra.knowledge.ingestion import KnowledgeIngestion

    real = KnowledgeIngestion.ingest
    if getattr(real, "_probed", False):
        return

    @functools.wraps(real)
    async def ingest(self: Any, team_id: str, doc_id: str) -> Any:
        line = {
            "kind": "ingest",
            "doc_id": doc_id,
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
        }
        _note(path, line)
        return await real(self, team_id, doc_id)

    ingest._probed = True  # type: ignore[attr-defined]
    KnowledgeIngestion.ingest = ingest  # type: ignore[method-assign]


def _note(path: str, line: dict[str, Any]) -> None:
    with open(path, "a") as out:  # one short append: whole lines from every process
        out.write(json.dumps(line) + "\n")


def read(path: str) -> list[dict[str, Any]]:
    try:
        with open(path) as lines:
            return [json.loads(line) for line in lines if line.strip()]
    except FileNotFoundError:
        return []
