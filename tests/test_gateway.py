"""The HTTP API in process: workflows, executions, ``/linq`` and the error table through the app
(the routers the Serve gateway mounts) on a System whose runs execute in this process.
The Serve gateway itself, and a runner killed mid-run, are ``tests/test_serve_gateway.py``."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from deployments.routers.health import HEALTH_CACHE_SECONDS
from linqra.errors import Unavailable
from tests.support.http import TeamClient, until, without_team
from tests.support.servers import HttpService

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


def create(
    api: httpx.Client, steps: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    response = api.post(
        "/v1/workflows", json={"name": "quotes", "steps": steps or QUOTE_STEPS, **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


def wait_terminal(api: Any, execution_id: str, timeout: float = 30) -> dict[str, Any]:
    return until(
        lambda: (
            (record := api.get(f"/v1/executions/{execution_id}").json())["status"]
            in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
            and record
        ),
        timeout,
    )


def test_health(client: TestClient) -> None:
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200 and set(body) == {"status", "version", "checks"}
    assert body["status"] == "ok" and body["checks"] == {"store": "ok", "runner": "ok"}


def test_health_is_503_with_retry_after_when_runs_cannot_start(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def restarting() -> dict[str, Any]:
        raise Unavailable("the runner is restarting")

    launcher = client.app.state.system.launcher  # type: ignore[attr-defined]
    monkeypatch.setattr(launcher, "ping", restarting)
    response = client.get("/healthz")
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"] == {"store": "ok", "runner": "error: Unavailable"}


def test_health_probes_share_one_check_a_second_and_readyz_checks_each_time(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = client.app.state.system.launcher  # type: ignore[attr-defined]
    real, pings = launcher.ping, []

    async def counted() -> Any:
        pings.append(1)
        return await real()

    monkeypatch.setattr(launcher, "ping", counted)
    started = time.monotonic()
    answers = [client.get("/healthz").status_code for _ in range(50)]
    elapsed = time.monotonic() - started
    assert answers == [200] * 50
    assert len(pings) <= 1 + int(elapsed / HEALTH_CACHE_SECONDS)  # one check a second at most
    before = len(pings)
    assert [client.get("/readyz").status_code for _ in range(3)] == [200] * 3
    assert len(pings) == before + 3

    async def restarting() -> dict[str, Any]:
        raise Unavailable("the runner is restarting")

    monkeypatch.setattr(launcher, "ping", restarting)
    assert client.get("/readyz").status_code == 503  # at once
    # /healthz follows within a second: the check /readyz just made is the one it answers from
    degraded = client.get("/healthz")
    assert degraded.status_code == 503 and degraded.json()["checks"]["runner"].startswith("error")


def test_openapi_docs(client: TestClient) -> None:
    api = client
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/workflows",
        "/v1/workflows/{workflow_id}/execute",
        "/v1/executions/{execution_id}/cancel",
        "/v1/executions/{execution_id}/resume",
        "/linq",
    ):
        assert path in paths


def test_team_header_is_required_and_validated(client: TestClient) -> None:
    missing = without_team(client, "GET", "/v1/workflows")
    assert missing.status_code == 401 and missing.json()["error"]["field"] == "X-Team-Id"
    bad = client.get("/v1/workflows", headers={"X-Team-Id": "../etc"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "X-Team-Id"


def test_workflow_crud_and_versions(client: TestClient) -> None:
    api = client
    wf = create(api)
    assert wf["version"] == 1 and wf["steps"][0]["target"] == "quotes-service"
    assert api.get(f"/v1/workflows/{wf['id']}").json()["name"] == "quotes"
    updated = api.put(
        f"/v1/workflows/{wf['id']}", json={"name": "quotes v2", "steps": QUOTE_STEPS[:1]}
    )
    assert updated.status_code == 200 and updated.json()["version"] == 2
    stale = api.put(
        f"/v1/workflows/{wf['id']}",
        json={"name": "x", "steps": QUOTE_STEPS},
        headers={"If-Match": "1"},
    )
    assert stale.status_code == 409
    versions = api.get(f"/v1/workflows/{wf['id']}/versions").json()
    assert [v["version"] for v in versions["items"]] == [2, 1] and versions["total"] == 2
    v1 = api.get(f"/v1/workflows/{wf['id']}/versions/1").json()
    assert v1["name"] == "quotes" and len(v1["definition"]["steps"]) == 2
    rolled = api.post(f"/v1/workflows/{wf['id']}/versions/1/rollback")
    assert (
        rolled.status_code == 201
        and rolled.json()["version"] == 3
        and rolled.json()["name"] == "quotes"
    )
    assert api.get(f"/v1/workflows/{wf['id']}/versions/3").json()["rolled_back_from"] == 1
    assert api.get(f"/v1/workflows/{wf['id']}/versions/9").status_code == 404
    assert api.delete(f"/v1/workflows/{wf['id']}").status_code == 204
    assert api.get(f"/v1/workflows/{wf['id']}").status_code == 404


def test_list_workflows_is_paginated(client: TestClient) -> None:
    other = TeamClient(client, "team-pages")
    for i in range(5):
        assert (
            other.post("/v1/workflows", json={"name": f"w{i}", "steps": QUOTE_STEPS}).status_code
            == 201
        )
    first = other.get("/v1/workflows", params={"limit": 2}).json()
    assert first["total"] == 5 and len(first["items"]) == 2 and first["next_offset"] == 2
    last = other.get("/v1/workflows", params={"limit": 2, "offset": 4}).json()
    assert len(last["items"]) == 1 and last["next_offset"] is None
    assert other.get("/v1/workflows", params={"limit": 1000}).status_code == 400


def test_execute_and_read_the_record(client: TestClient) -> None:
    api = client
    wf = create(api)
    response = api.post(
        f"/v1/workflows/{wf['id']}/execute",
        params={"wait": "true"},
        json={"params": {"topic": "calm"}},
    )
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["status"] == "COMPLETED" and record["result"] == "Marcus Aurelius"
    assert record["workflow_version"] == 1 and record["params"] == {"topic": "calm"}
    assert [(s["step"], s["status"], s["executor"]) for s in record["steps"]] == [
        (1, "COMPLETED", "io"),
        (2, "COMPLETED", "inline"),
    ]
    assert record["steps"][0]["inputs"]["intent"] == "/api/people/random"
    accepted = api.post(f"/v1/workflows/{wf['id']}/execute")
    assert accepted.status_code == 202
    done = wait_terminal(api, accepted.json()["id"])
    assert done["status"] == "COMPLETED"
    listed = api.get(
        "/v1/executions", params={"workflow_id": wf["id"], "status": "COMPLETED"}
    ).json()
    assert listed["total"] == 2 and {e["id"] for e in listed["items"]} == {record["id"], done["id"]}
    assert api.get("/v1/executions", params={"status": "DONE"}).status_code == 400


def test_other_teams_see_nothing(client: TestClient) -> None:
    wf = create(client)
    record = client.post(f"/v1/workflows/{wf['id']}/execute", params={"wait": "true"}).json()
    other = TeamClient(client, "team-b")
    assert other.get(f"/v1/workflows/{wf['id']}").status_code == 404
    assert other.post(f"/v1/workflows/{wf['id']}/execute").status_code == 404
    assert other.get(f"/v1/executions/{record['id']}").status_code == 404
    assert other.post(f"/v1/executions/{record['id']}/cancel").status_code == 404
    assert other.post(f"/v1/executions/{record['id']}/resume").status_code == 404
    assert other.delete(f"/v1/workflows/{wf['id']}").status_code == 404
    assert record["id"] not in {e["id"] for e in other.get("/v1/executions").json()["items"]}


def test_hundred_parallel_io_steps(client: TestClient, http_service: HttpService) -> None:
    api = client
    steps = [
        {
            "step": i,
            "target": "http",
            "action": "fetch",
            "intent": f"{http_service.url}/sleep",
            "params": {"ms": 500},
        }
        for i in range(1, 101)
    ]
    wf = create(api, steps, mode="dag")
    t0 = time.monotonic()
    record = api.post(f"/v1/workflows/{wf['id']}/execute", params={"wait": "true"}).json()
    assert record["status"] == "COMPLETED" and len(record["steps"]) == 100
    assert time.monotonic() - t0 < 5  # one after another would take 50 s
    starts = sorted(s["started_at"] for s in record["steps"])
    ends = sorted(s["finished_at"] for s in record["steps"])
    assert starts[-1] < ends[0]  # every step had started before the first one finished


def test_cancel_over_http(client: TestClient, http_service: HttpService) -> None:
    api = client
    wf = create(
        api,
        [
            {
                "step": 1,
                "target": "http",
                "action": "fetch",
                "intent": f"{http_service.url}/sleep",
                "params": {"ms": 10000, "key": "http-cancel"},
            },
            {"step": 2, "target": "noop"},
        ],
    )
    execution = api.post(f"/v1/workflows/{wf['id']}/execute").json()
    until(lambda: http_service.state.in_flight)  # step 1's request has reached the service
    response = api.post(f"/v1/executions/{execution['id']}/cancel")
    assert response.status_code == 200
    record = wait_terminal(api, execution["id"], 10)
    assert record["status"] == "CANCELLED" and record["steps"][0]["status"] == "CANCELLED"
    assert [s["step"] for s in record["steps"]] == [1]
    until(lambda: http_service.state.calls.get("cancelled:http-cancel"), timeout=5)
    assert http_service.state.calls.get("cancelled:http-cancel") == 1
    assert api.post(f"/v1/executions/{execution['id']}/cancel").status_code == 409


def test_resume_over_http(client: TestClient, http_service: HttpService) -> None:
    api = client
    key = f"resume-{time.monotonic_ns()}"
    wf = create(
        api,
        [
            {
                "step": 1,
                "target": "http",
                "action": "fetch",
                "intent": f"{http_service.url}/flaky",
                "params": {"key": key, "fail": 1},
            }
        ],
    )
    failed = api.post(f"/v1/workflows/{wf['id']}/execute", params={"wait": "true"}).json()
    assert failed["status"] == "FAILED" and failed["error"]["code"] == "http_503"
    resumed = api.post(f"/v1/executions/{failed['id']}/resume", params={"wait": "true"})
    assert resumed.status_code == 200 and resumed.json()["status"] == "COMPLETED"
    assert api.post(f"/v1/executions/{failed['id']}/resume").status_code == 409


def test_linq_endpoint_inline_and_stored(client: TestClient) -> None:
    api = client
    body = {
        "link": {"target": "workflow", "action": "execute"},
        "query": {
            "intent": "saying_of_the_day",
            "params": {"topic": "courage"},
            "workflow": QUOTE_STEPS,
        },
    }
    response = api.post("/linq", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["result"]["finalResult"] == "Marcus Aurelius"
    assert [s["step"] for s in out["result"]["steps"]] == [1, 2]
    assert out["metadata"]["status"] == "success" and out["metadata"]["teamId"] == "team-a"
    assert out["metadata"]["workflowMetadata"][0]["target"] == "quotes-service"
    wf = create(api)
    stored = api.post(
        "/linq",
        json={
            "link": {"target": "workflow", "action": "execute"},
            "query": {"workflowId": wf["id"]},
        },
    ).json()
    assert stored["result"]["finalResult"] == "Marcus Aurelius"
    record = api.get(f"/v1/executions/{stored['metadata']['executionId']}").json()
    assert record["source"] == "linq" and record["workflow_version"] == 1


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (
            {"link": {"target": "assistant", "action": "chat"}, "query": {}},
            400,
            "invalid_request",
            "query.chat",
        ),
        (
            {"link": {"target": "workflow", "action": "execute"}, "query": {}},
            400,
            "invalid_request",
            "query.workflow",
        ),
        (
            {
                "link": {"target": "workflow", "action": "execute"},
                "query": {"workflow": [{"step": 1, "target": "nope"}]},
            },
            400,
            "invalid_request",
            "query.workflow[0].target",
        ),
        ({"link": {"target": "workflow"}, "query": {}}, 400, "invalid_request", "link.action"),
    ],
)
def test_linq_bad_input(
    client: TestClient, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    response = client.post("/linq", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code and response.json()["error"]["field"].endswith(
        field
    )


def test_bad_input_gets_clear_4xx_and_writes_nothing(client: TestClient) -> None:
    api = TeamClient(client, "team-bad")
    cases: list[tuple[Any, int, str, str | None]] = [
        (b"{not json", 400, "invalid_json", None),
        (b"[1, 2]", 400, "invalid_request", None),
        (
            {"name": "x", "steps": [{"step": 1, "target": "noop", "extra": 1}]},
            400,
            "invalid_request",
            "steps[0].extra",
        ),
        (
            {"name": "x", "steps": [{"step": 1, "target": "nope"}]},
            400,
            "invalid_request",
            "steps[0].target",
        ),
        (
            {
                "name": "x",
                "mode": "dag",
                "steps": [{"step": 1, "target": "noop", "dependsOn": [1]}],
            },
            400,
            "invalid_request",
            "steps[0].dependsOn",
        ),
        ({"steps": [{"step": 1, "target": "noop"}]}, 400, "invalid_request", "name"),
        (
            {
                "name": "x",
                "steps": [{"step": 1, "target": "noop", "params": {"a": "{{step2.result}}"}}],
            },
            400,
            "invalid_request",
            "steps[0].params.a",
        ),
    ]
    for body, status, code, field in cases:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = api.post(
            "/v1/workflows", content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == code and error["message"], error
        if field:
            assert error["field"] == field, error
    big = api.post(
        "/v1/workflows",
        content=b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    deep = api.post(
        "/v1/workflows",
        content=b"[" * 5000 + b"]" * 5000,
        headers={"Content-Type": "application/json"},
    )
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "too_deep"
    assert api.get("/v1/workflows/wf_nope").status_code == 404
    assert api.get("/v1/executions/ex_nope").json()["error"]["code"] == "not_found"
    assert api.post("/v1/workflows/wf_nope/execute").status_code == 404
    assert api.post("/v1/workflows/x/execute", json={"params": {}, "bogus": 1}).status_code in (
        400,
        404,
    )
    assert api.get("/v1/workflows").json()["total"] == 0  # nothing half-written
    assert api.get("/v1/executions").json()["total"] == 0
