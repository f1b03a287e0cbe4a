"""CPU (``task``) steps on the runner's warm workers (actors/cpu_pool.py), on the real cluster:
a chain runs on a warm worker, steps that find it busy run as Ray tasks, a cancelled step's
worker is stopped and the next step gets a new one, and only the readiness warm-up's ping (not
a health probe's) starts the warm workers and waits for them."""

from __future__ import annotations

import time
from typing import Any

import pytest

from linqra.config import Settings

pytestmark = pytest.mark.ray

TEAM = "team-cpu"


@pytest.fixture(scope="module")
def runner(ray_cluster: Any, ray_settings: Settings) -> Any:
    from actors.cluster import start_cluster

    DASHBOARD[:] = [ray_cluster.dashboard_url]
    return start_cluster(ray_settings).runner


DASHBOARD: list[str] = []  # this session's cluster (set by the runner fixture)


def _workers(state: str) -> list[Any]:
    from ray.util.state import list_actors

    # the cluster by its address: another one on the machine (a benchmark, `linqra up`) makes
    # the state API's "auto" ambiguous
    return list_actors(
        address=f"http://{DASHBOARD[0]}",
        filters=[("class_name", "=", "CpuStepWorker"), ("state", "=", state)],
    )


def _until(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def _run(runner: Any, steps: list[dict[str, Any]], mode: str = "sequential") -> dict[str, Any]:
    import ray

    body = {"mode": mode, "steps": steps}
    record: dict[str, Any] = ray.get(runner.run_definition.remote(TEAM, body, {}, timeout=120))
    return record


def _cpu(step: int, **params: Any) -> dict[str, Any]:
    return {"step": step, "target": "noop", "executor": "task", "params": params}


def test_a_chain_of_cpu_steps_runs_on_a_warm_worker_and_overflows_to_tasks(runner: Any) -> None:
    record = _run(runner, [_cpu(1, a=1)])  # the runner started its warm worker as it booted
    assert record["status"] == "COMPLETED" and record["result"] == {"a": 1}
    _until(lambda: len(_workers("ALIVE")) == 1, "the warm worker is up")
    chain = [_cpu(1, i=1), *[_cpu(i, i=f"{{{{step{i - 1}.result.i}}}}") for i in range(2, 9)]]
    record = _run(runner, chain)
    assert record["status"] == "COMPLETED" and record["result"] == {"i": 1}
    assert [s["executor"] for s in record["steps"]] == ["task"] * 8
    # four at once: one on the warm worker, three as tasks; still one worker (pool size 1)
    record = _run(runner, [_cpu(i, n=i) for i in range(1, 5)], mode="dag")
    assert record["status"] == "COMPLETED" and record["result"] == {"n": 4}
    assert len(_workers("ALIVE")) == 1


def test_a_pure_step_the_worker_cannot_answer_at_once_runs_the_usual_way(runner: Any) -> None:
    """The warm worker works a pure step out without its event loop; one that fails there is
    run again the usual way, and its outcome is the usual one (not retried, its error's code)."""
    body = {"expression": "abs(@)", "input": "text"}
    record = _run(runner, [{"step": 1, "target": "transform", "executor": "task", "params": body}])
    step = record["steps"][0]
    assert record["status"] == "FAILED" and step["executor"] == "task"
    assert step["error"]["code"] == "transform_failed" and step["attempts"] == 1


def _cancel_a_long_cpu_step(settings: Settings) -> dict[str, Any]:
    """A 60 s CPU step started through a system of this driver and cancelled once it runs;
    the execution's record, within 30 s."""
    import asyncio

    from actors.handles import RayLauncher
    from linqra.system import System

    async def cancel() -> dict[str, Any]:
        system = await System.open(settings, launcher=RayLauncher(settings), init=False)
        try:
            body = {"steps": [{"step": 1, "target": "wait", "executor": "task",
                               "params": {"seconds": 60}}]}  # fmt: skip
            definition = system.workflows.validate_definition(body)
            execution = await system.runs.start_execution(TEAM, definition=definition)
            records = system.workflows.executions
            deadline = time.monotonic() + 60
            while not await records.step_runs(TEAM, execution["id"]):  # its RUNNING record
                assert time.monotonic() < deadline, "the step never started"
                await asyncio.sleep(0.1)
            return await system.runs.cancel_execution(TEAM, execution["id"])
        finally:
            await system.close()

    t0 = time.monotonic()
    record: dict[str, Any] = asyncio.run(cancel())
    assert record["status"] == "CANCELLED" and time.monotonic() - t0 < 30
    assert [s["status"] for s in record["steps"]] == ["CANCELLED"]
    return record


def _stop_the_warm_worker(runner: Any, settings: Settings) -> None:
    """The warm worker up, then stopped by cancelling the CPU step it runs."""
    _run(runner, [_cpu(1)])
    _until(lambda: len(_workers("ALIVE")) == 1, "a warm worker is up")
    (before,) = _workers("ALIVE")
    _cancel_a_long_cpu_step(settings)
    _until(
        lambda: before.actor_id in {a.actor_id for a in _workers("DEAD")}, "its worker is stopped"
    )


def test_cancelling_a_cpu_step_stops_its_worker(runner: Any, ray_settings: Settings) -> None:
    _stop_the_warm_worker(runner, ray_settings)
    record = _run(runner, [_cpu(1, after=True)])  # a task, while a new worker starts
    assert record["status"] == "COMPLETED" and record["result"] == {"after": True}
    _until(lambda: len(_workers("ALIVE")) == 1, "a new warm worker is up")


def test_a_health_ping_neither_starts_nor_waits_for_a_cpu_worker_the_warm_up_ping_does(
    runner: Any, ray_settings: Settings
) -> None:
    """A health probe pings the runner once a second with a 5 s timeout: one that waited for a
    worker process to start timed out on a busy machine (503), and one that started workers
    undid their stop after ``cpu_pool_idle_seconds``."""
    import ray

    _stop_the_warm_worker(runner, ray_settings)
    assert ray.get(runner.ping.remote(), timeout=10)["runner_id"]
    assert _workers("ALIVE") == [] and _workers("PENDING_CREATION") == []
    warm, plain = runner.ping.remote(warm=True), runner.ping.remote()
    answered, _ = ray.wait([warm, plain], num_returns=1, timeout=60)
    assert answered == [plain]  # the plain one, sent second, did not wait for the worker
    assert ray.get(warm, timeout=60)["runner_id"]
    assert len(_workers("ALIVE")) == 1  # up once the warm ping answered


def test_an_idle_warm_worker_never_starves_overflow_tasks(runner: Any) -> None:
    """One of the two CPUs held elsewhere (as a Serve replica with a CPU holds one): steps that
    overflow the warm worker still get the other CPU at once (a worker that reserved a CPU
    while idle left them waiting until it was stopped)."""
    import ray

    @ray.remote(num_cpus=1)
    class Holder:
        def ping(self) -> bool:
            return True

    _run(runner, [_cpu(1)])
    _until(lambda: len(_workers("ALIVE")) >= 1, "a warm worker is up")
    holder = Holder.remote()  # type: ignore[attr-defined]
    try:
        ray.get(holder.ping.remote(), timeout=60)
        t0 = time.monotonic()
        record = _run(runner, [_cpu(i, n=i) for i in range(1, 5)], mode="dag")
        assert record["status"] == "COMPLETED" and record["result"] == {"n": 4}
        assert time.monotonic() - t0 < 20
    finally:
        ray.kill(holder)
