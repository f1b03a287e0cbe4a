"""The cluster's actors through the Ray launcher alone (no gateway): what starts work on Ray
finds the actors by name, and every kind of work reaches its end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from linqra.config import Settings
from linqra.system import System

pytestmark = pytest.mark.ray

TEAM = "team-cluster"


@pytest.fixture(scope="module")
def cluster(ray_cluster: Any, ray_settings: Settings) -> Settings:
    from actors.cluster import start_cluster

    start_cluster(ray_settings)
    return ray_settings


async def _open(settings: Settings) -> System:
    from actors.events import open_bus
    from actors.handles import RayLauncher

    return await System.open(
        settings, launcher=RayLauncher(settings), events=open_bus(settings), init=True
    )


def test_start_cluster_is_idempotent(cluster: Settings) -> None:
    import ray

    from actors.cluster import start_cluster
    from actors.handles import RUNNER, SCHEDULER, SUPERVISOR

    again = start_cluster(cluster)
    for name in (RUNNER, SCHEDULER, SUPERVISOR):
        ray.get_actor(name, namespace=cluster.ray.namespace)
    assert ray.get(again.runner.ping.remote(), timeout=30)["runner_id"] == RUNNER


def test_a_workflow_with_nested_workflow_task_and_io_steps_runs_on_the_cluster(
    cluster: Settings,
) -> None:
    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        system = await _open(cluster)
        try:
            inner = await system.workflows.create(TEAM, {"name": "inner", "steps": [
                {"step": 1, "target": "transform", "params": {"expression": "`7`", "input": {}}}]})  # fmt: skip
            agent = await system.agents.create_agent(TEAM, {"name": "helper"})
            task = await system.agents.create_task(TEAM, agent.id, {
                "name": "double", "type": "DATA_PROCESSING",
                "config": {"expression": "sum(values)"}})  # fmt: skip
            outer = await system.workflows.create(TEAM, {"name": "outer", "mode": "dag", "steps": [
                {"step": 1, "target": "quotes-service", "action": "fetch", "intent": "/api/people"},
                {"step": 2, "target": "workflow", "action": "execute",
                 "params": {"workflowId": inner.id}},
                {"step": 3, "target": "agent", "action": "execute",
                 "params": {"taskId": task.id, "input": {"values": [20, 22]}}},
            ]})  # fmt: skip
            ex = await system.runs.start_execution(TEAM, workflow_id=outer.id)
            record = await system.runs.wait_execution(TEAM, ex["id"], 90)
            adhoc = await system.runs.run_adhoc(TEAM, {
                "id": None, "agent_id": None, "version": None, "name": "ad hoc",
                "type": "WORKFLOW_EMBEDDED_ADHOC", "max_retries": 0, "backoff_seconds": 1,
                "timeout_seconds": 60, "config": {"steps": [{"step": 1, "target": "noop"}]}})  # fmt: skip
            adhoc = await system.runs.wait_task_execution(TEAM, adhoc["id"], 60)
            return record, adhoc
        finally:
            await system.close()

    record, adhoc = asyncio.run(run())
    assert record["status"] == "COMPLETED", record.get("error")
    steps = {s["step"]: s for s in record["steps"]}
    assert steps[2]["output"]["result"] == 7
    assert steps[3]["output"]["result"] == 42
    assert adhoc["status"] == "COMPLETED"


def test_a_document_is_ingested_by_the_supervisor(cluster: Settings) -> None:
    async def run() -> dict[str, Any]:
        system = await _open(cluster)
        try:
            col = await system.knowledge.create_collection(TEAM, {"name": "notes"})
            doc, _ = await system.knowledge.add_document(
                TEAM, col.id, b"Ray actors are found by name.", file_name="n.txt"
            )
            await system.runs.ingest(TEAM, doc["id"])
            for _ in range(600):
                doc = await system.knowledge.get_document(TEAM, col.id, doc["id"])
                if doc["status"] in ("READY", "FAILED"):
                    break
                await asyncio.sleep(0.1)
            return doc
        finally:
            await system.close()

    assert asyncio.run(run())["status"] == "READY"
