"""An agent actor's process ends when its agent is deleted (at once, also mid-run) and when it
passivates: the actor is gone from Ray and its worker process no longer exists."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

pytestmark = pytest.mark.ray

TEAM = {"X-Team-Id": "team-lifecycle"}


@pytest.fixture
def api(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, headers=TEAM, timeout=90) as client:
        yield client


def until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s")


def actor_pid(cluster: Any, name: str, namespace: str) -> int:
    """The worker process id of the live actor ``name`` (from Ray's state API)."""
    from ray.util.state import list_actors

    def find() -> int | None:
        found = list_actors(
            address=f"http://{cluster.dashboard_url}",
            filters=[("name", "=", name), ("state", "=", "ALIVE")],
        )
        return next((int(a.pid) for a in found if a.ray_namespace == namespace and a.pid), None)

    pid: int = until(find, 30, f"{name} is alive")
    return pid


def gone(name: str, namespace: str, pid: int) -> bool:
    import ray

    try:
        ray.get_actor(name, namespace=namespace)
        return False
    except ValueError:
        pass
    if not psutil.pid_exists(pid):
        return True
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def waiting_task(api: httpx.Client, agent_id: str) -> dict[str, Any]:
    return api.post(f"/v1/agents/{agent_id}/tasks", json={
        "name": "wait", "type": "WORKFLOW_EMBEDDED",
        "config": {"steps": [{"step": 1, "target": "wait", "params": {"seconds": "{{params.seconds}}"}}]},
    }).json()  # fmt: skip


def test_deleting_an_agent_mid_run_ends_its_actor_process_and_cancels_the_run(
    api: httpx.Client, ray_settings: Any, ray_cluster: Any
) -> None:
    namespace = ray_settings.ray.namespace
    agent = api.post("/v1/agents", json={"name": "doomed", "max_concurrency": 1}).json()
    task = waiting_task(api, agent["id"])
    running = api.post(f"/v1/tasks/{task['id']}/execute", json={"input": {"seconds": 120}}).json()
    until(
        lambda: api.get(f"/v1/task-executions/{running['id']}").json()["status"] == "RUNNING",
        30,
        "the run starts",
    )
    name = f"linqra-agent-{agent['id']}"
    pid = actor_pid(ray_cluster, name, namespace)
    assert psutil.pid_exists(pid)
    queued = api.post(f"/v1/tasks/{task['id']}/execute", json={"input": {"seconds": 1}}).json()
    assert queued["status"] == "PENDING"  # behind the running one (max_concurrency 1)

    assert api.delete(f"/v1/agents/{agent['id']}").status_code == 204
    # busy, so no passivation: only the deletion can end it (it used to live on forever)
    until(lambda: gone(name, namespace, pid), 20, "the deleted agent's actor process ends")
    for tx in (running, queued):
        final = until(
            lambda tx=tx: (
                (d := api.get(f"/v1/task-executions/{tx['id']}").json())["status"]
                in ("COMPLETED", "FAILED", "CANCELLED")
                and d
            ),
            20,
            "its executions end",
        )
        assert final["status"] == "CANCELLED", final
    first = api.get(f"/v1/task-executions/{running['id']}").json()
    workflow_run = api.get(f"/v1/executions/{first['execution_ids'][0]}").json()
    assert workflow_run["status"] == "CANCELLED"  # the 120 s wait was stopped, not left running
    assert api.get(f"/v1/agents/{agent['id']}").status_code == 404


def test_an_idle_deleted_agents_actor_ends_at_once(
    api: httpx.Client, ray_settings: Any, ray_cluster: Any
) -> None:
    namespace = ray_settings.ray.namespace
    agent = api.post("/v1/agents", json={"name": "short-lived"}).json()
    task = waiting_task(api, agent["id"])
    done = api.post(
        f"/v1/tasks/{task['id']}/execute", params={"wait": "true"}, json={"input": {"seconds": 0}}
    ).json()
    assert done["status"] == "COMPLETED"
    name = f"linqra-agent-{agent['id']}"
    pid = actor_pid(ray_cluster, name, namespace)
    assert api.delete(f"/v1/agents/{agent['id']}").status_code == 204
    # its loop used to die on the missing agent, so it never reached passivation either
    until(lambda: gone(name, namespace, pid), 20, "the deleted agent's actor process ends")


def test_a_passivated_agents_process_ends(
    api: httpx.Client, ray_settings: Any, ray_cluster: Any
) -> None:
    namespace = ray_settings.ray.namespace
    agent = api.post("/v1/agents", json={"name": "sleepy"}).json()
    task = waiting_task(api, agent["id"])
    done = api.post(
        f"/v1/tasks/{task['id']}/execute", params={"wait": "true"}, json={"input": {"seconds": 0}}
    ).json()
    assert done["status"] == "COMPLETED"
    name = f"linqra-agent-{agent['id']}"
    pid = actor_pid(ray_cluster, name, namespace)
    idle = ray_settings.agents.idle_seconds
    until(lambda: gone(name, namespace, pid), idle + 15, "the idle actor's process ends")
    # and it comes back on demand
    again = api.post(
        f"/v1/tasks/{task['id']}/execute", params={"wait": "true"}, json={"input": {"seconds": 0}}
    ).json()
    assert again["status"] == "COMPLETED"
