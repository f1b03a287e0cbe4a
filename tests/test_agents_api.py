"""Agents, tasks and task executions over HTTP: manual and ad hoc runs, cancel, bad input,
agent and workflow steps and a trigger cycle through the app in process; on the Ray cluster
through the Serve gateway, what is about Ray: agent actors (activation, passivation, an actor
killed mid-run) and the scheduler actor (cron fires, pause/resume, restart)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.http import TeamClient, until

TEAM = {"X-Team-Id": "team-agents"}


@pytest.fixture
def api(client: TestClient) -> TeamClient:
    """The app in process, as team ``team-agents``."""
    return TeamClient(client, "team-agents")


@pytest.fixture
def cluster(gateway_url: str) -> Iterator[httpx.Client]:
    """The Serve gateway on the Ray cluster, as team ``team-agents``."""
    with httpx.Client(base_url=gateway_url, headers=TEAM, timeout=90) as http:
        yield http


def actor_alive(name: str, namespace: str) -> bool:
    import ray

    try:
        ray.get_actor(name, namespace=namespace)
        return True
    except ValueError:
        return False


def test_manual_runs_record_their_trigger_and_a_repeated_key_runs_once(api: TeamClient) -> None:
    agent = api.post("/v1/agents", json={"name": "calc", "max_concurrency": 2}).json()
    task = api.post(f"/v1/agents/{agent['id']}/tasks", json={
        "name": "sum", "type": "DATA_PROCESSING", "config": {"expression": "sum(values)"}}).json()  # fmt: skip
    done = api.post(
        f"/v1/tasks/{task['id']}/execute",
        params={"wait": "true"},
        json={"input": {"values": [1, 2, 3]}},
    )
    assert done.status_code == 200 and done.json()["status"] == "COMPLETED"
    assert done.json()["result"] == 6 and done.json()["trigger"]["type"] == "MANUAL"
    execution = api.get(f"/v1/executions/{done.json()['execution_ids'][0]}").json()
    assert execution["source"] == "task" and execution["status"] == "COMPLETED"
    accepted = api.post(f"/v1/tasks/{task['id']}/execute", json={"input": {"values": [5]}})
    assert accepted.status_code == 202 and accepted.json()["status"] == "PENDING"
    until(lambda: api.get(f"/v1/task-executions/{accepted.json()['id']}").json()["result"] == 5)
    assert api.get(f"/v1/agents/{agent['id']}/executions").json()["total"] == 2
    same = api.post(
        f"/v1/tasks/{task['id']}/execute", json={"input": {"values": [1]}, "idempotency_key": "k1"}
    ).json()
    twice = api.post(
        f"/v1/tasks/{task['id']}/execute", json={"input": {"values": [1]}, "idempotency_key": "k1"}
    ).json()
    assert same["id"] == twice["id"]
    assert api.get("/v1/task-executions", params={"task_id": task["id"]}).json()["total"] == 3


def test_a_disabled_task_is_refused_with_409_and_runs_nothing(api: TeamClient) -> None:
    agent = api.post("/v1/agents", json={"name": "off"}).json()
    task = api.post(f"/v1/agents/{agent['id']}/tasks", json={
        "name": "sum", "type": "DATA_PROCESSING", "config": {"expression": "sum(values)"}}).json()  # fmt: skip
    assert api.post(f"/v1/tasks/{task['id']}/disable").json()["enabled"] is False
    refused = api.post(f"/v1/tasks/{task['id']}/execute", json={"input": {"values": [1]}})
    assert refused.status_code == 409 and refused.json()["error"]["field"] == "task_id"
    assert api.get("/v1/task-executions", params={"task_id": task["id"]}).json()["total"] == 0
    assert api.post(f"/v1/tasks/{task['id']}/enable").json()["enabled"] is True


@pytest.mark.ray
def test_manual_run_activates_the_agent_which_passivates_when_idle(
    cluster: httpx.Client, ray_settings: Any
) -> None:
    api = cluster
    agent = api.post("/v1/agents", json={"name": "calc", "max_concurrency": 2}).json()
    task = api.post(f"/v1/agents/{agent['id']}/tasks", json={
        "name": "sum", "type": "DATA_PROCESSING", "config": {"expression": "sum(values)"}}).json()  # fmt: skip
    done = api.post(
        f"/v1/tasks/{task['id']}/execute",
        params={"wait": "true"},
        json={"input": {"values": [1, 2, 3]}},
    )
    assert (
        done.status_code == 200
        and done.json()["status"] == "COMPLETED"
        and done.json()["result"] == 6
    )
    assert done.json()["trigger"]["type"] == "MANUAL"
    execution = api.get(f"/v1/executions/{done.json()['execution_ids'][0]}").json()
    assert execution["source"] == "task" and execution["status"] == "COMPLETED"
    name = f"linqra-agent-{agent['id']}"
    assert actor_alive(name, ray_settings.ray.namespace)
    until(lambda: not actor_alive(name, ray_settings.ray.namespace), timeout=20)  # idle 4 s: gone
    again = api.post(
        f"/v1/tasks/{task['id']}/execute", params={"wait": "true"}, json={"input": {"values": [5]}}
    )
    assert again.json()["result"] == 5  # re-activated on demand
    listed = api.get(f"/v1/agents/{agent['id']}/executions").json()
    assert listed["total"] == 2
    same = api.post(
        f"/v1/tasks/{task['id']}/execute", json={"input": {"values": [1]}, "idempotency_key": "k1"}
    ).json()
    twice = api.post(
        f"/v1/tasks/{task['id']}/execute", json={"input": {"values": [1]}, "idempotency_key": "k1"}
    ).json()
    assert same["id"] == twice["id"]


@pytest.mark.ray
def test_cron_task_fires_every_second_pauses_and_survives_a_scheduler_restart(
    cluster: httpx.Client, ray_settings: Any
) -> None:
    import ray

    api = cluster
    scheduler = ray.get_actor("linqra-scheduler", namespace=ray_settings.ray.namespace)
    wakes = ray.get(scheduler.ping.remote())["wakes"]

    agent = api.post("/v1/agents", json={"name": "ticker"}).json()
    task = api.post(f"/v1/agents/{agent['id']}/tasks", json={
        "name": "tick", "type": "DATA_PROCESSING", "config": {"expression": "@"},
        "triggers": [{"type": "CRON", "cron": "* * * * * ?", "timezone": "Europe/Paris"}]}).json()  # fmt: skip
    assert task["schedules"][0]["active"]
    # the gateway told the scheduler, which sleeps until its next known fire, to look again
    until(lambda: ray.get(scheduler.ping.remote())["wakes"] > wakes, timeout=10)

    def executions() -> list[dict[str, Any]]:
        return api.get("/v1/task-executions", params={"task_id": task["id"], "limit": 100}).json()[
            "items"
        ]

    until(lambda: len([e for e in executions() if e["status"] == "COMPLETED"]) >= 3, timeout=30)
    ray.kill(scheduler, no_restart=False)  # Ray restarts it; it carries on from the store
    before = len(executions())
    until(lambda: len(executions()) >= before + 3, timeout=30)
    assert api.post(f"/v1/tasks/{task['id']}/pause").json()["paused"] is True
    paused_count = settled(lambda: len(executions()))  # a fire in flight at the pause lands
    observed = time.monotonic()
    until(lambda: time.monotonic() - observed > 2.5, timeout=10)  # two cron periods and more
    assert len(executions()) == paused_count  # nothing fired while paused
    api.post(f"/v1/tasks/{task['id']}/disable")
    fires = [e["trigger"]["scheduled_at"] for e in executions()]
    assert len(fires) == len(set(fires))  # no time fired twice, also across the restart
    until(lambda: all(e["status"] == "COMPLETED" for e in executions()), timeout=30)
    # a restart slower than agents.misfire_threshold_seconds (a loaded machine) is one misfire,
    # fired once at once (FIRE_ONCE_NOW), never a burst of catch-up fires
    late = [e["trigger"] for e in executions() if e["trigger"].get("misfire")]
    assert len(late) <= 1, late


def settled(read: Callable[[], int], quiet: float = 1.5, timeout: float = 30) -> int:
    """``read()`` once it has not changed for ``quiet`` seconds."""
    value, since = read(), time.monotonic()
    deadline = since + timeout
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "never settled"
        current = read()
        if current != value:
            value, since = current, time.monotonic()
        time.sleep(0.1)
    return value


def test_adhoc_run_and_cancel(api: TeamClient) -> None:
    adhoc = api.post("/v1/tasks/execute-adhoc", params={"wait": "true"}, json={
        "config": {"steps": [{"step": 1, "target": "transform", "params": {"expression": "x", "input": "{{params}}"}}]},
        "input": {"x": "hello"}}).json()  # fmt: skip
    assert (
        adhoc["status"] == "COMPLETED" and adhoc["result"] == "hello" and adhoc["task_id"] is None
    )

    agent = api.post("/v1/agents", json={"name": "slow"}).json()
    slow = api.post(f"/v1/agents/{agent['id']}/tasks", json={
        "name": "wait", "type": "WORKFLOW_EMBEDDED",
        "config": {"steps": [{"step": 1, "target": "wait", "params": {"seconds": "{{params.seconds}}"}}]}}).json()  # fmt: skip
    running = api.post(f"/v1/tasks/{slow['id']}/execute", json={"input": {"seconds": 30}}).json()

    def started() -> bool:  # its workflow execution made (a cancel before that makes none)
        tx = api.get(f"/v1/task-executions/{running['id']}").json()
        return tx["status"] == "RUNNING" and bool(tx["execution_ids"])

    until(started)
    cancelled = api.post(f"/v1/task-executions/{running['id']}/cancel").json()
    assert cancelled["cancel_requested"]
    final = until(
        lambda: (
            (d := api.get(f"/v1/task-executions/{running['id']}").json())["status"] == "CANCELLED"
            and d
        )
    )
    assert api.get(f"/v1/executions/{final['execution_ids'][0]}").json()["status"] == "CANCELLED"


@pytest.mark.ray
def test_an_agent_killed_mid_run_is_restarted_and_finishes_the_run(
    cluster: httpx.Client, ray_settings: Any
) -> None:
    """Kill the busy agent's actor: it restarts, adopts the run, and the run still completes."""
    import ray

    api = cluster
    agent = api.post("/v1/agents", json={"name": "slow"}).json()
    slow = api.post(f"/v1/agents/{agent['id']}/tasks", json={
        "name": "wait", "type": "WORKFLOW_EMBEDDED",
        "config": {"steps": [{"step": 1, "target": "wait", "params": {"seconds": "{{params.seconds}}"}}]}}).json()  # fmt: skip
    busy = api.post(f"/v1/tasks/{slow['id']}/execute", json={"input": {"seconds": 3}}).json()
    until(lambda: api.get(f"/v1/task-executions/{busy['id']}").json()["status"] == "RUNNING")
    actor = ray.get_actor(f"linqra-agent-{agent['id']}", namespace=ray_settings.ray.namespace)
    ray.kill(actor, no_restart=False)
    done = until(
        lambda: (
            (d := api.get(f"/v1/task-executions/{busy['id']}").json())["status"]
            in ("COMPLETED", "FAILED")
            and d
        ),
        timeout=40,
    )
    assert (
        done["status"] == "COMPLETED" and done["attempts"] == 1
    )  # the same execution, not a rerun


def test_bad_agent_and_task_requests(api: TeamClient) -> None:
    assert api.post("/v1/agents", json={"name": ""}).json()["error"]["field"] == "name"
    agent = api.post("/v1/agents", json={"name": "strict"}).json()
    bad = api.post(f"/v1/agents/{agent['id']}/tasks", json={
        "name": "x", "type": "DATA_PROCESSING", "config": {"expression": "@"},
        "triggers": [{"type": "CRON", "cron": "0 0 12 * * *"}]})  # fmt: skip
    assert (
        bad.status_code == 400 and bad.json()["error"]["field"] == "triggers[0].cron.day-of-month"
    )
    assert (
        api.post(
            "/v1/agents/ag_nope/tasks",
            json={"name": "x", "type": "DATA_PROCESSING", "config": {"expression": "@"}},
        ).status_code
        == 404
    )
    assert api.get("/v1/task-executions/tx_nope").status_code == 404
    assert api.post("/v1/tasks/execute-adhoc", json={"config": {"steps": []}}).status_code == 400
    other = TeamClient(api.client, "someone-else")
    assert other.get(f"/v1/agents/{agent['id']}").status_code == 404


def test_agent_and_workflow_steps_and_a_trigger_cycle_is_stopped(api: TeamClient) -> None:
    agent = api.post("/v1/agents", json={"name": "helpers", "max_concurrency": 1}).json()
    total = api.post(f"/v1/agents/{agent['id']}/tasks", json={
        "name": "total", "type": "DATA_PROCESSING", "config": {"expression": "sum(values)"}}).json()  # fmt: skip
    inner = api.post("/v1/workflows", json={"name": "inner", "steps": [
        {"step": 1, "target": "transform", "params": {"expression": "join('-', parts)", "input": "{{params}}"}}]}).json()  # fmt: skip
    outer = api.post("/v1/workflows", json={"name": "outer", "mode": "dag", "steps": [
        {"step": 1, "target": "agent", "action": "execute", "params": {"taskId": total["id"], "input": {"values": [2, 3]}}},
        {"step": 2, "target": "workflow", "action": "execute", "params": {"workflowId": inner["id"], "params": {"parts": ["a", "b"]}}},
        {"step": 3, "target": "transform", "params": {"expression": "[sum, joined]",
         "input": {"sum": "{{step1.result.result}}", "joined": "{{step2.result.result}}"}}},
    ]}).json()  # fmt: skip
    record = api.post(
        f"/v1/workflows/{outer['id']}/execute", params={"wait": "true"}, json={}
    ).json()
    assert record["status"] == "COMPLETED", record["error"]
    assert record["result"] == [5, "a-b"]
    runs = api.get("/v1/task-executions", params={"task_id": total["id"]}).json()["items"]
    assert runs[0]["trigger"]["type"] == "WORKFLOW" and runs[0]["depth"] == 1

    # a task that runs a workflow that runs the same task: stopped at the depth limit
    loop_wf = api.post(
        "/v1/workflows", json={"name": "loop", "steps": [{"step": 1, "target": "noop"}]}
    ).json()
    looping = api.post(f"/v1/agents/{agent['id']}/tasks", json={
        "name": "loop", "type": "WORKFLOW_TRIGGER", "config": {"workflow_id": loop_wf["id"]}}).json()  # fmt: skip
    api.put(f"/v1/workflows/{loop_wf['id']}", json={"name": "loop", "steps": [
        {"step": 1, "target": "agent", "action": "execute", "params": {"taskId": looping["id"]}}]})  # fmt: skip
    ended = api.post(f"/v1/tasks/{looping['id']}/execute", params={"wait": "true"}, json={}).json()
    assert ended["status"] == "FAILED"
    nested = api.get("/v1/task-executions", params={"task_id": looping["id"], "limit": 100}).json()[
        "items"
    ]
    assert sorted(t["depth"] for t in nested) == [0, 1, 2, 3, 4, 5]
    assert all(t["status"] == "FAILED" for t in nested)
    deepest = max(nested, key=lambda t: t["depth"])
    assert "deeper than 5" in json.dumps(deepest["error"])
