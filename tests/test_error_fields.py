"""A 400's ``field`` names the field in the user's own request, and its message is about it:
not a field of what the request was compiled into (a task's workflow, an inline workflow's
definition), not another endpoint's name for it, not pydantic's union-branch tags. Through the
HTTP API in process (the ``client`` fixture)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.http import TeamClient


@pytest.fixture
def api(client: TestClient) -> TeamClient:
    return TeamClient(client, "team-fields")


def error(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()["error"]
    return body


def test_a_data_processing_tasks_bad_expression_names_config_expression(api: TeamClient) -> None:
    agent = api.post("/v1/agents", json={"name": "calc"}).json()
    bad = api.post(
        f"/v1/agents/{agent['id']}/tasks",
        json={"name": "sum", "type": "DATA_PROCESSING", "config": {"expression": "sum("}},
    )
    err = error(bad)
    assert err["field"] == "config.expression"
    assert err["message"].startswith("config.expression: invalid JMESPath expression")
    assert "steps" not in err["message"]


def test_an_inline_linq_steps_missing_action_names_query_workflow_index(api: TeamClient) -> None:
    bad = api.post(
        "/linq",
        json={
            "link": {"target": "workflow", "action": "execute"},
            "query": {"workflow": [{"step": 1, "target": "http", "intent": "http://127.0.0.1/"}]},
        },
    )
    err = error(bad)
    assert err["field"] == "query.workflow[0].action"
    assert err["message"].startswith("query.workflow[0].action: action must be one of")
    assert "steps" not in err["message"]
    step = {"step": 1, "target": "http", "action": "fetch", "intent": "http://127.0.0.1/"}
    bad = api.post(
        "/linq",
        json={
            "link": {"target": "workflow", "action": "execute"},
            "query": {"mode": "parallel", "workflow": [step]},
        },
    )
    err = error(bad)
    assert err["field"] == "query.mode" and err["message"].startswith("query.mode: Input should")


def test_the_milvus_search_intent_without_text_names_text(api: TeamClient) -> None:
    assert api.post("/v1/knowledge/collections", json={"name": "intent"}).status_code == 201
    err = error(api.post("/api/milvus/collections/intent/search", json={}))
    assert err["field"] == "text"
    assert err["message"].startswith("text is required") and "query" not in err["message"]
    assert "vector" not in err["message"]  # this endpoint takes none
    err = error(api.post("/api/milvus/collections/intent/search", json={"query": " "}))
    assert err["field"] == "query" and err["message"].startswith("query is required")
    err = error(
        api.post("/api/milvus/collections/intent/search", json={"text": "x", "nResults": 0})
    )
    assert err["field"] == "nResults" and err["message"].startswith("nResults is a whole number")
