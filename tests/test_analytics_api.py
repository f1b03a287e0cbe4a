"""The analytics API (``/v1/analytics/…``, ``/v1/executions/{id}/timeline``) through the app in
process: real runs and real LLM calls (to the local OpenAI fake), team-scoped answers, bounds
refused with a 400 naming the parameter."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from linqra.config import Settings
from tests.support.servers import HttpService

OTHER = {"X-Team-Id": "team-b"}


@pytest.fixture
def settings(llm_settings: Settings) -> Settings:
    return llm_settings


def _workflow(client: TestClient, http: HttpService) -> str:
    body = {
        "name": "scored",
        "steps": [
            {"step": 1, "target": "http", "action": "fetch", "intent": f"{http.url}/flaky",
             "params": {"key": "{{params.key}}", "fail": 1},
             "retry": {"maxAttempts": 3, "initialDelayMs": 5}},
            {"step": 2, "target": "transform",
             "params": {"expression": "{score: abs(@)}", "input": "{{params.x}}"}},
        ],
    }  # fmt: skip
    created = client.post("/v1/workflows", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _run(client: TestClient, wf: str, x: Any) -> dict[str, Any]:
    params = {"x": x, "key": f"k{time.monotonic_ns()}"}
    answer = client.post(f"/v1/workflows/{wf}/execute?wait=true", json={"params": params})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_user_follows_rates_latency_results_and_timelines(
    client: TestClient, http_service: HttpService
) -> None:
    wf = _workflow(client, http_service)
    records = [_run(client, wf, x) for x in (1, 2, 2, -3, "nan?")]
    assert [r["status"] for r in records] == ["COMPLETED"] * 4 + ["FAILED"]

    page = client.get("/v1/analytics/workflows", params={"workflow_id": wf})
    assert page.status_code == 200, page.text
    body = page.json()
    assert set(body) >= {"from", "to", "group_by", "items", "total", "next_offset"}
    (item,) = body["items"]
    assert (item["workflow"], item["workflow_name"], item["runs"], item["failed"]) == (
        wf,
        "scored",
        5,
        1,
    )
    assert item["success_rate"] == 0.8 and item["failure_rate"] == 0.2
    assert item["duration_ms"]["max"] == pytest.approx(
        max(r["duration_ms"] for r in records), abs=1e-3
    )
    before = client.get(
        "/v1/analytics/workflows", params={"from": "2020-01-01", "to": "2020-01-02"}
    )
    assert before.json()["items"] == [] and before.json()["to"] == "2020-01-02T00:00:00.000000Z"
    trend = client.get("/v1/analytics/workflows", params={"bucket": "day", "group_by": "status"})
    assert {(i["status"], i["runs"]) for i in trend.json()["items"]} == {
        ("COMPLETED", 4),
        ("FAILED", 1),
    }

    steps = client.get("/v1/analytics/steps", params={"workflow_id": wf}).json()["items"]
    assert [(s["step"], s["target"], s["runs"], s["attempts_max"]) for s in steps] == [
        (1, "http", 5, 2), (2, "transform", 5, 1),
    ]  # fmt: skip
    assert steps[1]["error_codes"] == ["transform_failed"]

    scores = client.get("/v1/analytics/results", params={"workflow_id": wf, "path": "score"})
    assert scores.status_code == 200, scores.text
    assert [(i["value"], i["count"]) for i in scores.json()["items"]] == [(2, 2), (1, 1), (3, 1)]
    assert scores.json()["exact"] is True

    slowest = client.get("/v1/analytics/top/slowest", params={"of": "steps", "n": 1}).json()
    assert slowest["items"][0]["duration_ms"] == max(
        s["duration_ms"] for r in records for s in r["steps"]
    )

    line = client.get(f"/v1/executions/{records[0]['id']}/timeline")
    assert line.status_code == 200, line.text
    bars = line.json()["steps"]
    assert [(b["step"], b["attempts"], b["executor"]) for b in bars] == [
        (1, 2, "io"),
        (2, 1, "inline"),
    ]
    assert bars[0]["start_ms"] <= bars[0]["end_ms"] <= bars[1]["start_ms"]

    # another team sees nothing of it
    assert (
        client.get(f"/v1/executions/{records[0]['id']}/timeline", headers=OTHER).status_code == 404
    )
    assert client.get("/v1/executions/ex_nope/timeline").status_code == 404
    assert client.get("/v1/analytics/workflows", headers=OTHER).json()["items"] == []
    theirs = client.get(
        "/v1/analytics/results", params={"workflow_id": wf, "path": "score"}, headers=OTHER
    )
    assert theirs.json()["matched"] == 0


def test_costs_per_model_match_the_usage_records(client: TestClient) -> None:
    for text in ("one", "two words", "three little words"):
        done = client.post(
            "/v1/chat/completions",
            json={"model": "openai:gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
        )
        assert done.status_code == 200, done.text
    usage = client.get("/v1/usage", params={"group_by": "model"}).json()["items"]
    costs = client.get("/v1/analytics/costs", params={"group_by": "model,provider"})
    assert costs.status_code == 200, costs.text
    (row,) = costs.json()["items"]
    (expected,) = usage
    assert (row["model"], row["provider"], row["calls"]) == (expected["model"], "openai", 3)
    assert Decimal(row["cost"]) == Decimal(expected["cost"]) > 0
    assert row["input_tokens"] == expected["input_tokens"]
    assert len(row["price_versions"]) == 1 and row["currencies"] == ["USD"]
    top = client.get("/v1/analytics/top/expensive", params={"by": "call", "n": 2}).json()
    assert len(top["items"]) == 2
    assert Decimal(top["items"][0]["cost"]) >= Decimal(top["items"][1]["cost"])
    assert client.get("/v1/analytics/costs", headers=OTHER).json()["items"] == []
    assert client.get("/v1/analytics/tasks").json()["items"] == []
    assert client.get("/v1/analytics/assistants").json()["items"] == []


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/analytics/workflows", {"from": "2026-01-01", "to": "2026-06-01"}, "from"),
        (
            "/v1/analytics/steps",
            {"from": "2026-01-01", "to": "2026-01-16", "bucket": "hour"},
            "from",
        ),
        ("/v1/analytics/costs", {"from": "2020-01-01"}, "from"),
        ("/v1/analytics/workflows", {"bucket": "week"}, "bucket"),
        ("/v1/analytics/workflows", {"group_by": "planet"}, "group_by"),
        ("/v1/analytics/costs", {"group_by": "model,provider,day,team"}, "group_by"),
        ("/v1/analytics/tasks", {"sort": "fastest"}, "sort"),
        ("/v1/analytics/assistants", {"from": "2026-02-02", "to": "2026-02-01"}, "to"),
        ("/v1/analytics/workflows", {"from": "last week"}, "from"),
        ("/v1/analytics/workflows", {"limit": 500}, "limit"),
        ("/v1/analytics/results", {"path": "a"}, "workflow_id"),
        ("/v1/analytics/results", {"workflow_id": "wf", "path": "a[?"}, "path"),
        ("/v1/analytics/results", {"workflow_id": "wf", "path": "a", "sample": 10_000}, "sample"),
        ("/v1/analytics/top/slowest", {"n": 1000}, "n"),
        ("/v1/analytics/top/expensive", {"by": "planet"}, "by"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    client: TestClient, path: str, params: dict[str, Any], field: str
) -> None:
    answer = client.get(path, params=params)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and error["code"] == "invalid_request" and error["message"]
