"""Issue 17 part 2: the I/O pool and the agents' actors grow with the work, within limits, and
shrink back when idle — on the session's Ray cluster.

The pool: a Linqra of its own namespace on the session cluster (its own ``linqra-io-N``), one
I/O actor of four steps at a time, at most three; a workflow of parallel ``wait`` steps run by a
runner in this process through the Ray executor (the runner actor's dispatcher,
``actors/io_batch.py``). Agents: one actor per busy agent, created on its first task and gone
after ``agents.idle_seconds`` without work (``actors/agent.py``) — nothing to build, asserted here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from linqra.config import Settings
from linqra.system import System
from tests.support.http import until

pytestmark = pytest.mark.ray

TEAM, NAMESPACE = "team-io-growth", "linqra-io-growth"
SIZE, CONCURRENCY, MAX, IDLE = 1, 4, 3, 2.0


@pytest.fixture(scope="module")
def growing(ray_cluster: Any, ray_settings: Settings) -> Iterator[Settings]:
    """Settings of a growing pool in a namespace of its own, its first actor started; every
    ``linqra-io-N`` of that namespace killed afterwards."""
    import ray

    from actors.handles import forget
    from actors.io_pool import start_io_worker

    execution = ray_settings.execution.model_copy(
        update={
            "io_pool_size": SIZE,
            "io_concurrency": CONCURRENCY,
            "io_pool_max": MAX,
            "io_idle_seconds": IDLE,
            "cpu_pool_size": 0,
        }
    )
    settings = ray_settings.model_copy(
        update={
            "execution": execution,
            "ray": ray_settings.ray.model_copy(update={"namespace": NAMESPACE}),
        }
    )
    ray.get(start_io_worker(settings, 0).ping.remote(), timeout=120)
    yield settings
    for name in pool_names(ray_cluster):
        ray.kill(ray.get_actor(name, namespace=NAMESPACE))
        forget(settings, name)


def pool_names(cluster: Any) -> list[str]:
    """The live ``linqra-io-N`` actors of the test's namespace, from Ray's state API."""
    from ray.util.state import list_actors

    found = list_actors(
        address=f"http://{cluster.dashboard_url}",
        filters=[("class_name", "=", "IOStepWorker"), ("state", "=", "ALIVE")],
        limit=1000,
    )
    return sorted(a.name for a in found if a.ray_namespace == NAMESPACE)


def test_a_burst_grows_the_io_pool_to_its_maximum_and_idle_shrinks_it_back(
    ray_cluster: Any, growing: Settings
) -> None:
    from actors.executor import RayExecutor

    n = 6 * CONCURRENCY  # six workers' worth: more than the maximum takes at once
    steps = [{"step": i, "target": "wait", "params": {"seconds": 1, "i": i}}
             for i in range(1, n + 1)]  # fmt: skip
    assert pool_names(ray_cluster) == ["linqra-io-0"]
    seen: set[str] = set()
    most = 0

    def watch(stop: threading.Event) -> None:
        nonlocal most
        while not stop.is_set():
            names = pool_names(ray_cluster)
            seen.update(names)
            most = max(most, len(names))
            time.sleep(0.25)  # each look is a state-API call: not too many on two cores

    async def run() -> tuple[list[dict[str, Any]], float]:
        system = await System.open(growing, init=True)
        try:
            runner = system.runner("io-growth-test", RayExecutor(growing))
            definition = system.workflows.validate_definition({"mode": "dag", "steps": steps})
            # bursts until every worker it asked for is up: on a busy machine a worker process
            # can take longer to start than one burst lasts
            records: list[dict[str, Any]] = []
            t0 = time.monotonic()
            while len(seen) < MAX:
                left = 120 - (time.monotonic() - t0)
                assert left > 0 and watcher.is_alive(), f"the I/O pool never grew: {seen}"
                ex = await system.workflows.new_execution(TEAM, definition=definition, params={})
                records.append(await runner.run(TEAM, ex["id"], left))
            # the dispatcher lives on this loop: keep it running until the pool shrank back
            t0 = time.monotonic()
            while await asyncio.to_thread(pool_names, ray_cluster) != ["linqra-io-0"]:
                assert time.monotonic() - t0 < 60, "the added I/O actors never retired"
                await asyncio.sleep(0.2)
            return records, time.monotonic() - t0
        finally:
            await system.close()

    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,))
    watcher.start()
    try:
        records, shrank = asyncio.run(run())
    finally:
        stop.set()
        watcher.join()
    for record in records:
        assert record["status"] == "COMPLETED", record.get("error")
        runs = record["steps"]
        assert sorted(s["step"] for s in runs) == list(range(1, n + 1)), "one run a step"
        assert {s["status"] for s in runs} == {"COMPLETED"}
        assert sorted(s["output"]["i"] for s in runs) == list(range(1, n + 1))
    assert seen == {f"linqra-io-{i}" for i in range(MAX)}, seen  # grew, to the maximum only
    assert most == MAX
    # back to its size after IDLE seconds without a step (and the time to ask it to exit)
    assert shrank < IDLE + 30
    took = ", ".join(f"{r['duration_ms'] / 1000:.1f}s" for r in records)
    print(f"bursts of {n} steps in {took}; pool back to 1 after {shrank:.1f}s")


def test_a_pool_without_a_maximum_does_not_grow(ray_cluster: Any, growing: Settings) -> None:
    from actors.executor import RayExecutor

    fixed = growing.model_copy(update={"execution": growing.execution.model_copy(
        update={"io_pool_max": None})})  # fmt: skip
    steps = [{"step": i, "target": "wait", "params": {"seconds": 0.3}} for i in range(1, 13)]

    async def run() -> dict[str, Any]:
        system = await System.open(fixed, init=True)
        try:
            runner = system.runner("io-fixed-test", RayExecutor(fixed))
            definition = system.workflows.validate_definition({"mode": "dag", "steps": steps})
            ex = await system.workflows.new_execution(TEAM, definition=definition, params={})
            return await runner.run(TEAM, ex["id"], 120)
        finally:
            await system.close()

    assert pool_names(ray_cluster) == ["linqra-io-0"], "the last test left workers running"
    record = asyncio.run(run())
    assert record["status"] == "COMPLETED", record.get("error")
    # twelve 0.3 s steps, four at a time, on the one actor: three rounds
    assert record["duration_ms"] / 1000 >= 0.9
    assert pool_names(ray_cluster) == ["linqra-io-0"]


def test_agents_actors_follow_their_work(gateway_url: str, ray_settings: Settings) -> None:
    """One actor per agent with work, created by its first task; none once they are idle."""
    import ray

    def alive(name: str) -> bool:
        try:
            ray.get_actor(name, namespace=ray_settings.ray.namespace)
            return True
        except ValueError:
            return False

    with httpx.Client(base_url=gateway_url, headers={"X-Team-Id": TEAM}, timeout=90) as api:
        names, tasks = [], []
        for k in range(2):
            agent = api.post("/v1/agents", json={"name": f"busy-{k}"}).json()
            names.append(f"linqra-agent-{agent['id']}")
            tasks.append(api.post(f"/v1/agents/{agent['id']}/tasks", json={
                "name": "sleep", "type": "WORKFLOW_EMBEDDED",
                "config": {"steps": [{"step": 1, "target": "wait", "params": {"seconds": 2}}]},
            }).json())  # fmt: skip
        assert not any(alive(name) for name in names)  # no work yet: no actor
        runs = [api.post(f"/v1/tasks/{t['id']}/execute", json={}).json() for t in tasks]
        until(lambda: all(alive(name) for name in names), timeout=60, every=0.1)
        for run in runs:
            done = until(lambda r=run: _ended(api, r["id"]), timeout=60, every=0.2)
            assert done["status"] == "COMPLETED", done
        # agents.idle_seconds (4 s in the tests) without work: both passivated
        until(lambda: not any(alive(name) for name in names), timeout=60, every=0.2)


def _ended(api: httpx.Client, tx_id: str) -> dict[str, Any] | None:
    record: dict[str, Any] = api.get(f"/v1/task-executions/{tx_id}").json()
    return record if record["status"] in ("COMPLETED", "FAILED", "CANCELLED") else None
