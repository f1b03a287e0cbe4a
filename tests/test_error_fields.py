"""A 400's ``field`` names the field in the user's own request, and its message is about it:
not a field of what the request was compiled into (a task's workflow, an inline workflow's
definition), not another endpoint's name for it, not pydantic's union-branch tags. Through the
HTTP API in process (the ``client`` fixture)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pydantic
import pytest
from fastapi.testclient import TestClient
from pydantic import AfterValidator, BaseModel

from linqra.validation import format_pydantic_error
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


def test_a_filter_of_the_wrong_type_names_filter_not_pydantics_union_branches(
    api: TeamClient,
) -> None:
    cid = api.post("/v1/knowledge/collections", json={"name": "typed"}).json()["id"]
    bad = api.post(f"/v1/knowledge/collections/{cid}/search", json={"query": "x", "filter": 5})
    err = error(bad)
    assert err["field"] == "filter"
    assert err["message"] == "filter: Input should be a valid string or a valid dictionary"
    assert [d["field"] for d in err["details"]] == ["filter", "filter"]
    err = error(api.post(f"/v1/knowledge/collections/{cid}/search", json={"query": 5}))
    assert err["field"] == "query"  # a body field called query, not "body.query"


class Shapes(BaseModel):
    filter: str | dict[str, Any] | None = None
    url: str | None = None
    date: str | None = None
    checked: Annotated[str, AfterValidator(lambda v: v)] | int | None = None
    labels: dict[str, int] | None = None


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({"filter": 5}, ["filter", "filter"]),
        ({"url": 5, "date": 5}, ["url", "date"]),  # fields called like a branch keep their name
        ({"checked": []}, ["checked", "checked"]),
        ({"labels": {"str": "x"}}, ["labels.str"]),  # so does a user's key
    ],
)
def test_only_pydantics_branch_labels_leave_a_field_name(
    data: dict[str, Any], fields: list[str]
) -> None:
    try:
        Shapes.model_validate(data)
    except pydantic.ValidationError as exc:
        assert [d["field"] for d in format_pydantic_error(exc).details or []] == fields
    else:
        raise AssertionError("valid")


def test_an_api_call_tasks_bad_config_names_its_own_fields(api: TeamClient) -> None:
    agent = api.post("/v1/agents", json={"name": "caller"}).json()

    def refused(config: dict[str, Any]) -> dict[str, Any]:
        tasks = f"/v1/agents/{agent['id']}/tasks"
        return error(api.post(tasks, json={"name": "c", "type": "API_CALL", "config": config}))

    err = refused({"url": 5})
    assert err["field"] == "config.url" and err["message"].startswith("config.url: Input should")
    err = refused({"service": "no-such-service", "path": "/x"})
    assert err["field"] == "config.service" and "steps" not in err["message"]
    err = refused({"url": "http://127.0.0.1/", "headers": 5})
    assert err["field"] == "config.headers" and "steps" not in err["message"]


@pytest.mark.parametrize(
    ("kwargs", "sent"),
    [
        ({"data": {"name": "x"}}, "application/x-www-form-urlencoded"),
        ({"files": {"name": (None, "x")}}, "multipart/form-data"),
        ({"content": b"<name>x</name>", "headers": {"Content-Type": "text/xml"}}, "text/xml"),
    ],
)
def test_a_body_that_is_not_json_is_told_to_be_json(
    api: TeamClient, kwargs: dict[str, Any], sent: str
) -> None:
    refused = api.post("/v1/workflows", **kwargs)
    assert refused.status_code == 400, refused.text
    body = error(refused)
    assert body["field"] == "body"
    assert body["message"] == (
        f"body: send the body as JSON (Content-Type: application/json), not {sent}"
    )


@pytest.mark.parametrize(
    ("sent", "kind"),
    [([1], "an array"), ("x", "a string"), (5, "a number"), (True, "a boolean"), (None, "null")],
)
def test_a_json_body_that_is_not_an_object_says_so(api: TeamClient, sent: Any, kind: str) -> None:
    as_json = {"content": json.dumps(sent), "headers": {"Content-Type": "application/json"}}
    refused = api.post("/v1/workflows", **as_json)  # json=None would send no body
    assert refused.status_code == 400, refused.text
    body = error(refused)
    assert (body["field"], body["message"]) == (
        "body",
        f"body: the body must be a JSON object ({{...}}), not {kind}",
    )
    assert body["details"] == [
        {"field": "body", "message": f"the body must be a JSON object ({{...}}), not {kind}",
         "type": "object_type"}
    ]  # fmt: skip


def test_a_body_of_many_bad_values_is_refused_promptly_naming_the_first_fifty() -> None:
    """Naming each field the user's way compares the errors' paths: over a body of thousands of
    bad union values that must not take seconds (it took 20 s for 2,000), so ``details`` names
    the first fifty and the message says there are more."""
    import time

    from linqra.validation import MAX_ERROR_DETAILS

    class Params(BaseModel):
        params: dict[str, str | int | float | bool]

    values = {f"k{i}": [i] for i in range(4000)}
    t0 = time.perf_counter()
    with pytest.raises(pydantic.ValidationError) as raised:
        Params.model_validate({"params": values})
    refused = format_pydantic_error(raised.value)
    took = time.perf_counter() - t0
    assert refused.details is not None and len(refused.details) == MAX_ERROR_DETAILS
    assert refused.field == "params.k0"
    assert refused.message.endswith(
        f"(and more: the first {MAX_ERROR_DETAILS} problems are in details)"
    ), refused.message[-80:]
    assert took < 2, took


def test_a_misspelt_field_is_named_first_with_what_it_was_meant_to_be(api: TeamClient) -> None:
    """``taget`` for ``target``: the missing ``target`` is the typo's consequence; the 400
    leads with the typo. An unknown field that is no near miss stays second."""
    typo = error(
        api.post("/v1/workflows", json={"name": "t", "steps": [{"step": 1, "taget": "noop"}]})
    )
    assert typo["field"] == "steps[0].taget"
    assert typo["message"] == (
        "steps[0].taget: Extra inputs are not permitted; did you mean 'target'? (and 1 more)"
    )
    assert [d["field"] for d in typo["details"]] == ["steps[0].taget", "steps[0].target"]
    other = error(
        api.post("/v1/workflows", json={"name": "t", "steps": [{"step": 1, "zzz": "noop"}]})
    )
    assert other["field"] == "steps[0].target"
    assert other["message"] == "steps[0].target: Field required (and 1 more)"


def test_one_typo_a_missing_field_the_closest_and_an_optional_ones_gets_no_hint() -> None:
    class Step(BaseModel, extra="forbid"):
        target: str
        action: str | None = None

    class Body(BaseModel, extra="forbid"):
        steps: list[Step]

    def refused(body: dict[str, Any]) -> Any:
        with pytest.raises(pydantic.ValidationError) as caught:
            Body.model_validate(body)
        return format_pydantic_error(caught.value)

    two = refused({"steps": [{"targt": "a", "taget": "b"}]})  # both near target: one is meant
    hinted = [d["field"] for d in two.details if "did you mean" in d["message"]]
    assert two.field == "steps[0].targt" and hinted == ["steps[0].targt"]
    later = refused({"steps": [{"target": "a"}, {"taget": "b"}]})  # a typo of a later step
    assert later.field == "steps[1].taget"
    optional = refused({"steps": [{"target": "a", "actoin": "b"}]})  # nothing missing: no hint
    assert optional.field == "steps[0].actoin"
    assert optional.message == "steps[0].actoin: Extra inputs are not permitted"
