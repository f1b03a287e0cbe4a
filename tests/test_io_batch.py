"""I/O steps of one scheduling round go to the pool in batches (actors/io_batch.py): every
step still gets its own result as soon as it has one, runs in parallel, and a cancel stops
the steps on their worker."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from linqra.config import Settings
from linqra.system import System

pytestmark = pytest.mark.ray

TEAM = "team-io-batch"


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


def _in_flight(settings: Settings) -> int:
    import ray

    from actors.io_pool import io_pool

    return sum(ray.get([actor.in_flight.remote() for actor in io_pool(settings)], timeout=30))


def test_parallel_io_steps_each_get_their_own_result(cluster: Settings) -> None:
    n, seconds = 60, 0.5
    steps = [{"step": i, "target": "wait", "params": {"seconds": seconds, "i": i}}
             for i in range(1, n + 1)]  # fmt: skip
    fan_in = {"step": n + 1, "target": "transform",
              "params": {"expression": "length(values)",
                         "input": {"values": [f"{{{{step{i}.result.i}}}}" for i in range(1, n + 1)]}}}  # fmt: skip

    async def run() -> dict[str, Any]:
        system = await _open(cluster)
        try:
            wf = await system.workflows.create(
                TEAM, {"name": "fan", "mode": "dag", "steps": [*steps, fan_in]}
            )
            return await system.runs.run_execution(TEAM, 120, workflow_id=wf.id)
        finally:
            await system.close()

    record = asyncio.run(run())
    assert record["status"] == "COMPLETED", record.get("error")
    by_step = {s["step"]: s for s in record["steps"]}
    assert [by_step[i]["output"]["i"] for i in range(1, n + 1)] == list(range(1, n + 1))
    assert all(by_step[i]["status"] == "COMPLETED" for i in range(1, n + 2))
    assert record["result"] == n
    # in parallel: 60 sequential half-second steps would take 30 s (the execution's own time:
    # opening the driver's System is not the subject)
    assert record["duration_ms"] / 1000 < n * seconds / 3


def test_cancel_stops_the_batched_steps_on_their_worker(cluster: Settings) -> None:
    n = 40
    steps = [{"step": i, "target": "wait", "params": {"seconds": 600}} for i in range(1, n + 1)]

    async def run() -> dict[str, Any]:
        system = await _open(cluster)
        try:
            wf = await system.workflows.create(
                TEAM, {"name": "long", "mode": "dag", "steps": steps}
            )
            ex = await system.runs.start_execution(TEAM, workflow_id=wf.id)
            deadline = time.monotonic() + 60
            while await asyncio.to_thread(_in_flight, cluster) < n:
                assert time.monotonic() < deadline, "the steps never all started"
                await asyncio.sleep(0.05)
            await system.runs.cancel_execution(TEAM, ex["id"])
            return await system.runs.wait_execution(TEAM, ex["id"], 60)
        finally:
            await system.close()

    record = asyncio.run(run())
    assert record["status"] == "CANCELLED"
    assert {s["status"] for s in record["steps"]} == {"CANCELLED"}
    deadline = time.monotonic() + 30
    while _in_flight(cluster):
        assert time.monotonic() < deadline, "the worker still runs cancelled steps"
        time.sleep(0.05)
