"""Healthy means ready (issue 15, part 5): once the cluster's warm-up has finished, a first
execution starts no process — its actors answer, their systems are open, and the Ray worker
processes its CPU steps need are running — and ``/healthz`` says 200 only after that warm-up,
then answers without asking the cluster again."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deployments.routers import health
from deployments.routers.health import HealthChecks
from linqra.config import Settings

# -- the health checks' warm-up, in process (no Ray) -----------------------------------------


class _Readiness:
    """A cluster whose warm-up ends when the test says so; counts what it is asked."""

    def __init__(self, fail_first: bool = False) -> None:
        self.release = threading.Event()
        self.fail_first = fail_first
        self.warm_ups = self.checks = 0

    async def warm_up(self) -> None:
        self.warm_ups += 1
        if self.fail_first and self.warm_ups == 1:
            raise ConnectionError("the runner is restarting")
        await asyncio.to_thread(self.release.wait)

    async def check(self) -> None:
        self.checks += 1


@pytest.fixture
def probed(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setattr(health, "WARM_UP_WAIT_SECONDS", 0.2)
    return client


def test_healthz_says_starting_until_the_warm_up_ends_then_asks_the_cluster_nothing_more(
    probed: TestClient,
) -> None:
    readiness = _Readiness()
    app: Any = probed.app
    app.state.health_checks = HealthChecks(max_age=0.0, readiness=readiness)  # no cache
    first = probed.get("/healthz")
    assert first.status_code == 503 and first.headers["Retry-After"]
    assert first.json()["checks"] == {"store": "ok", "runner": "starting"}
    assert probed.get("/healthz").json()["checks"]["runner"] == "starting"
    readiness.release.set()
    ok = probed.get("/healthz")
    assert ok.status_code == 200, ok.json()
    assert ok.json()["checks"] == {"store": "ok", "runner": "ok"}
    assert [probed.get("/healthz").status_code for _ in range(5)] == [200] * 5
    assert (readiness.warm_ups, readiness.checks) == (1, 0)  # one warm-up, then nothing
    assert probed.get("/readyz").status_code == 200
    assert readiness.checks == 1  # the deeper check asks every time


def test_a_failed_warm_up_is_reported_and_started_again(probed: TestClient) -> None:
    readiness = _Readiness(fail_first=True)
    readiness.release.set()
    app: Any = probed.app
    app.state.health_checks = HealthChecks(max_age=0.0, readiness=readiness)
    failed = probed.get("/healthz")
    assert failed.status_code == 503
    assert failed.json()["checks"]["runner"] == "error: ConnectionError"
    assert probed.get("/healthz").status_code == 200
    assert readiness.warm_ups == 2


def test_a_replica_waits_for_its_warm_up_before_it_takes_traffic() -> None:
    """What a gateway replica awaits as it builds its app (deployments/gateway.py): a replica
    Serve adds under load answers its first probe 200, as the replicas beside it do."""

    async def scenario() -> tuple[bool, bool, int, bool, int]:
        readiness = _Readiness()
        checks = HealthChecks(readiness=readiness)
        late = await checks.ready(timeout=0.05)  # still warming: the replica starts anyway
        readiness.release.set()
        ready = await checks.ready(timeout=5)  # the same warm-up, not a second one
        restarting = _Readiness(fail_first=True)  # an actor restarting: the next one succeeds
        restarting.release.set()
        recovered = await HealthChecks(readiness=restarting).ready(timeout=5)
        return late, ready, readiness.warm_ups, recovered, restarting.warm_ups

    assert asyncio.run(scenario()) == (False, True, 1, True, 2)


def test_without_a_cluster_there_is_nothing_to_warm(client: TestClient) -> None:
    assert client.get("/healthz").json()["checks"] == {"store": "ok", "runner": "ok"}


# -- on the session's Ray cluster ------------------------------------------------------------


def _worker_processes() -> set[int]:
    """Ray worker processes on this machine (an actor's or a task's), by pid."""
    import psutil  # type: ignore[import-untyped]

    found = set()
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if cmd.startswith("ray::") or "default_worker.py" in cmd:
            found.add(proc.pid)
    return found


@pytest.mark.ray
def test_after_the_warm_up_a_first_execution_starts_no_process(
    ray_cluster: Any, ray_settings: Settings
) -> None:
    import ray

    from actors.cluster import WARM_UP_TEAM, Readiness, start_cluster

    cluster = start_cluster(ray_settings)
    readiness = Readiness(ray_settings)
    record = asyncio.run(readiness.warm_up())
    cpus = ray.cluster_resources()["CPU"]  # type: ignore[no-untyped-call]
    cpu_slots = int(cpus // ray_settings.execution.cpu_step_num_cpus)
    kinds = [step.get("executor") for step in record["definition"]["steps"]]
    assert kinds.count("task") == cpu_slots
    assert len(kinds) == cpu_slots + ray_settings.execution.io_pool_size
    assert record["team_id"] == WARM_UP_TEAM

    before = _worker_processes()
    body = {
        "mode": "dag",
        "steps": [
            *({"step": i, "target": "wait", "params": {"seconds": 0.2}} for i in (1, 2, 3)),
            *(
                {"step": 4 + i, "target": "wait", "executor": "task", "params": {"seconds": 0.2}}
                for i in range(cpu_slots)
            ),
        ],
    }
    first = ray.get(cluster.runner.run_definition.remote("team-cold", body, {}), timeout=60)
    assert first["status"] == "COMPLETED", first.get("error")
    started = _worker_processes() - before
    assert not started, f"the first execution started Ray worker processes {sorted(started)}"
