"""``GET /v1/executions/{id}/stream``: a run followed live over SSE — the record each time it
changes until it is finished, resumable with ``Last-Event-ID``, other teams' ids a 404."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deployments.routers import executions
from tests.support.sse import sse

TWO_STEPS = {
    "name": "two steps",
    "steps": [
        {"step": 1, "target": "wait", "params": {"seconds": 1}},
        {"step": 2, "target": "noop", "params": {"after": "{{step1.result}}"}},
    ],
}


def _follow(client: TestClient, execution_id: str, **headers: str) -> list[tuple[str, str, Any]]:
    url = f"/v1/executions/{execution_id}/stream"
    with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(sse(response.iter_lines()))


def test_a_run_is_followed_until_it_is_finished(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executions, "STREAM_POLL_SECONDS", 0.05)  # the 1 s step is seen running
    wf = client.post("/v1/workflows", json=TWO_STEPS).json()["id"]
    ex = client.post(f"/v1/workflows/{wf}/execute", json={}).json()["id"]
    events = _follow(client, ex)
    assert {name for _, name, _ in events} == {"execution"}
    records = [data for _, _, data in events]
    assert records[-1]["status"] == "COMPLETED"
    assert [s["status"] for s in records[-1]["steps"]] == ["COMPLETED", "COMPLETED"]
    assert any(r["status"] == "RUNNING" for r in records[:-1])  # seen while it ran
    assert not any("heartbeat_at" in r or "runner_id" in r for r in records)  # not changes
    ids = [event_id for event_id, _, _ in events]
    assert len(ids) == len(set(ids))  # each event a change
    bodies = [json.dumps(r, sort_keys=True) for r in records]
    assert len(bodies) == len(set(bodies))

    # reconnecting with the last id seen: nothing new, the stream ends
    assert _follow(client, ex, **{"Last-Event-ID": ids[-1]}) == []
    # with an earlier id: the record as it is now, once
    again = _follow(client, ex, **{"Last-Event-ID": ids[0]})
    assert [data["status"] for _, _, data in again] == ["COMPLETED"]


def test_another_teams_execution_is_a_404(client: TestClient) -> None:
    wf = client.post("/v1/workflows", json=TWO_STEPS).json()["id"]
    ex = client.post(f"/v1/workflows/{wf}/execute?wait=true", json={}).json()["id"]
    other = client.get(f"/v1/executions/{ex}/stream", headers={"X-Team-Id": "team-b"})
    assert other.status_code == 404
    assert client.get("/v1/executions/ex_missing/stream").status_code == 404
