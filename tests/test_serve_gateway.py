"""The real Serve gateway on the session's Ray cluster, end to end: health, a workflow executed
with ``wait``, an agent's task run by its agent actor, a document ingested on the cluster, and a
runner actor killed mid-run. Every other HTTP behaviour is tested in process (``client``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.support.http import until

pytestmark = pytest.mark.ray

QUOTE_STEPS = [
    {
        "step": 1,
        "target": "quotes-service",
        "action": "fetch",
        "intent": "/api/people/random",
        "params": {"i": 0},
    },
    {
        "step": 2,
        "target": "transform",
        "params": {"expression": "fullName", "input": "{{step1.result}}"},
    },
]
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")


def wait_terminal(api: httpx.Client, execution_id: str, timeout: float = 30) -> dict[str, Any]:
    return until(
        lambda: (
            (record := api.get(f"/v1/executions/{execution_id}").json())["status"] in TERMINAL
            and record
        ),
        timeout,
        every=0.1,
    )


def test_health_reports_the_store_and_the_runner(api: httpx.Client) -> None:
    response = api.get("/healthz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"store": "ok", "runner": "ok"}
    assert len(response.headers.get_list("X-Request-Id")) == 1, response.headers


def test_every_answer_through_serve_has_one_request_id_the_error_body_names(
    api: httpx.Client,
) -> None:
    """Serve puts X-Request-Id on every answer itself; the app adds none there, so there is one
    (there were two), the one the request came with when it had one, and the error body's; one
    the app refused (too long) is echoed by Serve, and the app's own is there beside it."""
    missing = api.get("/v1/workflows/wf_nope")
    assert missing.status_code == 404
    assert missing.headers.get_list("X-Request-Id") == [missing.json()["error"]["request_id"]]
    sent = api.get("/v1/workflows/wf_nope", headers={"X-Request-Id": "mine-123"})
    assert sent.headers.get_list("X-Request-Id") == ["mine-123"], sent.headers
    assert sent.json()["error"]["request_id"] == "mine-123"
    odd = api.get("/v1/workflows/wf_nope", headers={"X-Request-Id": "x" * 200})  # refused
    named = odd.json()["error"]["request_id"]
    assert named != "x" * 200 and named in odd.headers.get_list("X-Request-Id"), odd.headers
    listed = api.get("/v1/workflows")
    assert listed.status_code == 200 and len(listed.headers.get_list("X-Request-Id")) == 1


def test_a_workflow_runs_on_the_cluster_and_waits_for_its_record(api: httpx.Client) -> None:
    wf = api.post("/v1/workflows", json={"name": "quotes", "steps": QUOTE_STEPS})
    assert wf.status_code == 201, wf.text
    response = api.post(
        f"/v1/workflows/{wf.json()['id']}/execute", params={"wait": "true"}, json={}
    )
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["status"] == "COMPLETED" and record["result"] == "Marcus Aurelius"
    assert record["runner_id"] != "in-process"  # the cluster's runner ran it
    assert [(s["step"], s["executor"]) for s in record["steps"]] == [(1, "io"), (2, "inline")]


def test_an_agents_task_runs_on_its_agent_actor(api: httpx.Client) -> None:
    agent = api.post("/v1/agents", json={"name": "serve-smoke"}).json()
    task = api.post(
        f"/v1/agents/{agent['id']}/tasks",
        json={"name": "sum", "type": "DATA_PROCESSING", "config": {"expression": "sum(values)"}},
    ).json()
    done = api.post(
        f"/v1/tasks/{task['id']}/execute", params={"wait": "true"}, json={"input": {"values": [4]}}
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "COMPLETED" and done.json()["result"] == 4


def test_an_upload_is_ingested_on_the_cluster(api: httpx.Client) -> None:
    cid = api.post("/v1/knowledge/collections", json={"name": "serve-smoke"}).json()["id"]
    uploaded = api.post(
        f"/v1/knowledge/collections/{cid}/documents",
        files={"file": ("dawn.txt", b"The harbour opens at dawn.", "text/plain")},
    )
    assert uploaded.status_code == 202, uploaded.text
    url = f"/v1/knowledge/collections/{cid}/documents/{uploaded.json()['id']}"
    doc = until(
        lambda: (d := api.get(url).json())["status"] in ("READY", "FAILED") and d,
        60,
        every=0.1,
    )
    assert doc["status"] == "READY", doc["error"]
    hits = api.post(
        f"/v1/knowledge/collections/{cid}/search", json={"query": "when does the harbour open"}
    ).json()["results"]
    assert hits[0]["text"] == "The harbour opens at dawn."


def test_runner_actor_killed_mid_run_recovers(api: httpx.Client) -> None:
    import ray

    wf = api.post(
        "/v1/workflows",
        json={
            "name": "survives",
            "steps": [
                {"step": 1, "target": "noop", "params": {"a": 1}},
                {"step": 2, "target": "wait", "params": {"seconds": 2}},
                {"step": 3, "target": "noop", "params": {"b": "{{step1.result.a}}"}},
            ],
        },
    ).json()
    execution = api.post(f"/v1/workflows/{wf['id']}/execute").json()

    def step_statuses() -> dict[int, str]:
        record = api.get(f"/v1/executions/{execution['id']}").json()
        return {s["step"]: s["status"] for s in record["steps"]}

    steps = until(lambda: (s := step_statuses()).get(2) == "RUNNING" and s, 15, every=0.05)
    assert steps == {1: "COMPLETED", 2: "RUNNING"}  # kill while step 2 runs
    runner = ray.get_actor("linqra-runner", namespace="linqra-test")
    ray.kill(runner, no_restart=False)
    record = wait_terminal(api, execution["id"], 60)
    assert record["status"] == "COMPLETED" and record["result"] == {"b": 1}
    assert record["auto_resumes"] == 1
    history = api.get(f"/v1/executions/{execution['id']}", params={"history": "true"}).json()
    statuses = [(s["step"], s["status"]) for s in history["steps"]]
    assert statuses == [(1, "COMPLETED"), (2, "CANCELLED"), (2, "COMPLETED"), (3, "COMPLETED")]
    assert api.get("/healthz").status_code == 200


def test_io_workers_killed_mid_step_run_their_steps_again(api: httpx.Client) -> None:
    """A lost I/O worker (its node died) under a live runner: its steps go to the worker Ray
    starts again, and the execution completes — no step failed, none left RUNNING."""
    import ray

    wf = api.post("/v1/workflows", json={"name": "io-lost", "mode": "dag", "steps": [
        {"step": i, "target": "wait", "params": {"seconds": 2}} for i in (1, 2, 3)]}).json()  # fmt: skip
    execution = api.post(f"/v1/workflows/{wf['id']}/execute").json()

    def running() -> bool:
        record = api.get(f"/v1/executions/{execution['id']}").json()
        return [s["status"] for s in record["steps"]] == ["RUNNING"] * 3

    until(running, 15, every=0.05)
    killed_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for name in ("linqra-io-0", "linqra-io-1"):
        ray.kill(ray.get_actor(name, namespace="linqra-test"), no_restart=False)
    record = wait_terminal(api, execution["id"], 60)
    assert record["status"] == "COMPLETED", record.get("error")
    history = api.get(f"/v1/executions/{execution['id']}", params={"history": "true"}).json()
    assert [(s["step"], s["status"]) for s in history["steps"]] == [
        (1, "COMPLETED"), (2, "COMPLETED"), (3, "COMPLETED")]  # fmt: skip
    assert all(s["started_at"] > killed_at for s in history["steps"])  # each one sent again


def test_cancel_and_resume_while_the_runner_restarts_answer_503_or_succeed(
    api: httpx.Client,
) -> None:
    """Cancel and resume sent while the runner actor is dead or restarting answer 503 with
    Retry-After (or succeed once it is back) — never a 500 — and the run ends cancelled, then
    completes when resumed."""
    import ray

    wf = api.post("/v1/workflows", json={"name": "slow", "steps": [
        {"step": 1, "target": "wait", "params": {"seconds": 30}}]}).json()  # fmt: skip
    execution = api.post(f"/v1/workflows/{wf['id']}/execute").json()
    until(lambda: api.get(f"/v1/executions/{execution['id']}").json()["status"] == "RUNNING", 15)
    ray.kill(ray.get_actor("linqra-runner", namespace="linqra-test"), no_restart=False)
    answers = []

    def cancelled() -> bool:
        response = api.post(f"/v1/executions/{execution['id']}/cancel")
        answers.append(response.status_code)
        if response.status_code == 503:
            assert int(response.headers["Retry-After"]) >= 1
            assert response.json()["error"]["code"] == "unavailable"
        return response.status_code == 200

    until(cancelled, 60, every=0.05)
    assert set(answers) <= {200, 503}, answers
    record = wait_terminal(api, execution["id"], 60)
    assert record["status"] == "CANCELLED"

    ray.kill(ray.get_actor("linqra-runner", namespace="linqra-test"), no_restart=False)
    resumed: list[int] = []

    def resume() -> bool:
        response = api.post(f"/v1/executions/{execution['id']}/resume")
        resumed.append(response.status_code)
        return response.status_code == 202

    until(resume, 60, every=0.05)
    assert set(resumed) <= {202, 503}, resumed
    assert api.get(f"/v1/executions/{execution['id']}").json()["status"] in ("RUNNING", "COMPLETED")
    api.post(f"/v1/executions/{execution['id']}/cancel")  # do not leave a 30 s wait running
