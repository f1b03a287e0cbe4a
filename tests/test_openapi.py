"""``/openapi.json`` describes every route: a schema for each success answer (204 has no body),
for each request body, and for the error body; a client generator gets typed records."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from deployments.app import create_app
from linqra.config import Settings

METHODS = {"get", "put", "post", "delete", "patch"}


def spec() -> dict[str, Any]:
    # the schema needs no System: the app is built, not started
    return TestClient(create_app(settings=Settings())).get("/openapi.json").json()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_every_success_answer_and_request_body_has_a_schema() -> None:
    document = spec()
    missing = []
    for method, path, operation in operations(document):
        successes = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        if not successes:
            missing.append(f"{method} {path}: no success answer")
        for code, response in successes.items():
            if code == "204":
                assert "content" not in response, f"{method} {path}: 204 with a body"
                continue
            schemas = [c.get("schema") for c in response.get("content", {}).values()]
            if not schemas or not all(s and s != {} for s in schemas):
                missing.append(f"{method} {path} {code}: no response schema")
        body = operation.get("requestBody")
        if body is not None:
            schemas = [c.get("schema") for c in body.get("content", {}).values()]
            if not schemas or not all(s and s != {} for s in schemas):
                missing.append(f"{method} {path}: request body without a schema")
    assert missing == []
    assert len(operations(document)) >= 63


def test_records_are_named_models_and_errors_are_described() -> None:
    document = spec()
    components = document["components"]["schemas"]
    for name in (
        "Workflow",
        "WorkflowVersion",
        "Execution",
        "ExecutionSummary",
        "ExecutionAccepted",
        "Agent",
        "Task",
        "TaskExecution",
        "Collection",
        "Document",
        "Health",
        "ErrorResponse",
        "Page_Workflow_",
    ):
        assert name in components, name
    execution = components["Execution"]["properties"]
    assert {"id", "status", "steps", "result", "error"} <= set(execution)
    paths = document["paths"]
    ok = paths["/v1/executions/{execution_id}"]["get"]["responses"]
    assert ok["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Execution"
    }
    assert ok["4XX"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert all("422" not in op["responses"] for _, _, op in operations(document))  # 400 here
    created = paths["/v1/workflows"]["post"]["requestBody"]["content"]["application/json"]
    assert {"name", "steps", "request"} <= set(created["schema"]["properties"])
