"""Strict input at the edge: every class of bad input gets a 4xx naming the field, never a 500.

The middleware and the error table are tested on a tiny FastAPI app in process (no Ray); the
parsers directly; budgets against a real store (the ``system`` fixture) to prove that a
refused request writes nothing; the Milvus adapter against Milvus Lite. Property tests
(Hypothesis) check that no input makes a parser or the middleware fail any other way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pickle
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Body, FastAPI, Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments.errors import install_error_handlers
from deployments.limits import InvalidJson, JsonTooDeep, RequestLimits, loads_strict
from deployments.openai_api import ChatRequest, chat_settings
from linqra.errors import (
    BudgetExceeded,
    ProviderError,
    StepError,
    StoreError,
    Unavailable,
    ValidationError,
)
from linqra.knowledge.filters import MAX_FILTER_DEPTH, compile_filter
from linqra.llm.budgets import BUDGETS
from linqra.llm.types import MAX_OUTPUT_TOKENS, parse_settings
from linqra.steps.builtin import TransformTarget, transform
from linqra.store import scoped_id
from linqra.system import System
from linqra.vectors import MilvusVectorStore, VectorStoreError
from linqra.workflows.conditions import (
    MAX_CONDITION_DEPTH,
    ConditionError,
    check_condition,
    evaluate_condition,
)
from linqra.workflows.definition import parse_definition
from linqra.workflows.interpolation import Scope, parse_expression

UPLOAD = "/v1/knowledge/collections/c1/documents"


# -- the JSON middleware and the error table ------------------------------------------
def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(
        RequestLimits, max_body_bytes=64 * 1024, max_json_depth=4, max_upload_bytes=256 * 1024
    )

    @app.post("/echo")
    async def echo(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        return body

    @app.post("/raw")  # parses the body itself whatever the content type, as a webhook does
    async def raw(request: Request) -> dict[str, Any]:
        body = await request.body()
        try:
            return {"bytes": body.decode(), "value": json.loads(body or b"{}")}
        except ValueError:
            raise ValidationError("the body is not JSON", field="body") from None

    @app.post("/chat")
    async def chat(body: ChatRequest) -> dict[str, Any]:
        return {"max_tokens": chat_settings(body).max_tokens}

    @app.post(UPLOAD)
    async def upload(request: Request) -> dict[str, Any]:
        form = await request.form()
        data = await form["file"].read()  # type: ignore[union-attr]
        return {"size": len(data)}

    @app.get("/boom")
    async def boom() -> None:
        raise KeyError("a bug")

    @app.get("/store-down")
    async def store_down() -> None:
        raise StoreError("the store does not answer", retry_after=2.5)

    @app.get("/vectors-down")
    async def vectors_down() -> None:
        raise VectorStoreError("the vector store does not answer")

    @app.get("/rate-limited")
    async def rate_limited() -> None:
        raise ProviderError("slow down", upstream_status=429, retry_after=7)

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        yield http


BAD_NUMBERS = [
    (b'{"params": {"x": NaN}}', "body.params.x"),
    (b'{"params": {"x": Infinity}}', "body.params.x"),
    (b'{"a": [1, 2, -Infinity]}', "body.a[2]"),
    (b'{"amount": 1e400}', "body.amount"),
    (b'{"amount": 1e999999}', "body.amount"),
    (b'{"amount": -1E+309}', "body.amount"),
    (b'{"n": 100000000000000000000}', "body.n"),
    (b'{"n": -9223372036854775809}', "body.n"),
    (b'{"n": ' + b"9" * 5000 + b"}", "body.n"),
    (b'{"t": "\\ud800"}', "body.t"),
    (b'{"odd key": {"x y": NaN}}', 'body["odd key"]["x y"]'),
]
CONTENT_TYPES = [
    "application/json",
    "Application/JSON; charset=utf-8",
    "text/plain",
    "application/x-json",
    None,
]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize(("body", "field"), BAD_NUMBERS)
async def test_non_finite_and_out_of_range_values_are_refused_whatever_the_content_type(
    client: httpx.AsyncClient, body: bytes, field: str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    for path in ("/echo", "/raw"):
        response = await client.post(path, content=body, headers=headers)
        assert response.status_code == 400, (path, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_json" and error["field"] == field, error
        assert error["request_id"] == response.headers["X-Request-Id"]


def test_strict_loads_for_code_that_parses_json_text_itself() -> None:
    assert loads_strict('{"a": [1, 2.5, "x"]}', where="metadata") == {"a": [1, 2.5, "x"]}
    with pytest.raises(InvalidJson) as refused:
        loads_strict('{"a": [1, {"b": NaN}]}', where="metadata")
    assert refused.value.field == "metadata.a[1].b" and refused.value.status == 400
    with pytest.raises(JsonTooDeep):
        loads_strict("[" * 100_000 + "]" * 100_000, where="metadata")


def test_multipart_metadata_is_decoded_strictly() -> None:
    from deployments.knowledge_api import _json_field

    with pytest.raises(InvalidJson) as refused:
        _json_field('{"year": 2025, "score": NaN}', "metadata")
    assert refused.value.field == "metadata.score"
    assert _json_field('{"year": 2025}', "metadata") == {"year": 2025}


async def test_valid_json_passes_on_byte_for_byte(client: httpx.AsyncClient) -> None:
    body = b'{"a": 1.5e2, "b": "\\u00e9\\ud83d\\ude00", "c": [9223372036854775807, -0.0, 1e-400]}'
    response = await client.post("/raw", content=body, headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == body.decode()
    assert response.json()["value"]["b"] == "é😀"
    echoed = await client.post(
        "/echo", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert echoed.status_code == 200 and echoed.json()["c"][0] == 2**63 - 1


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
async def test_body_depth_is_limited_whatever_the_content_type(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    for body in (b"[" * 5000 + b"]" * 5000, b'{"a": ' * 7 + b"1" + b"}" * 7):
        response = await client.post("/raw", content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "too_deep"
    ok = await client.post("/raw", content=b'{"a": {"b": {"c": {"d": [[1]]}}}}', headers=headers)
    assert ok.status_code == 200  # 4 levels + the envelope's 2


async def test_text_that_is_not_json_is_refused_only_when_it_claims_to_be_json(
    client: httpx.AsyncClient,
) -> None:
    for content_type in ("application/json", "application/x-json", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = await client.post("/echo", content=b"{not json", headers=headers)
        assert response.status_code == 400
        assert response.json()["error"] | {"message": ""} == {
            "code": "invalid_json",
            "message": "",
            "field": "body",
            "request_id": response.headers["X-Request-Id"],
        }
    # text/plain that is not JSON reaches its route, which decides (here: 400, never 500)
    plain = await client.post("/echo", content=b"hello", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 400 and plain.json()["error"]["code"] == "invalid_request"


async def test_multipart_uploads_keep_their_own_limit_and_are_not_json_decoded(
    client: httpx.AsyncClient,
) -> None:
    data = b"NaN [[[[[[[[[[ " + b"x" * (100 * 1024)  # over the JSON limit, under the upload one
    response = await client.post(UPLOAD, files={"file": ("a.txt", data, "text/plain")})
    assert response.status_code == 200 and response.json() == {"size": len(data)}
    big = await client.post(UPLOAD, files={"file": ("a.txt", b"x" * (300 * 1024), "text/plain")})
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    body = await client.post("/echo", content=b'{"a": "' + b"x" * (65 * 1024) + b'"}')
    assert body.status_code == 413


async def test_an_unexpected_error_is_one_log_line_with_a_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="linqra.errors")
    response = await client.get("/boom", headers={"X-Request-Id": "req-42.a"})
    assert response.status_code == 500
    assert response.headers["X-Request-Id"] == "req-42.a"
    assert response.json()["error"]["request_id"] == "req-42.a"
    assert "a bug" not in response.text
    records = [r for r in caplog.records if r.name == "linqra.errors"]
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    line = errors[0].getMessage()
    assert "\n" not in line and all(s in line for s in ("req-42.a", "GET", "/boom", "KeyError"))
    details = [r for r in records if r.levelno == logging.DEBUG]
    assert len(details) == 1 and details[0].exc_info is not None  # the traceback, at DEBUG only


async def test_every_response_has_a_request_id_and_a_bad_one_is_replaced(
    client: httpx.AsyncClient,
) -> None:
    fine = await client.post("/echo", json={"a": 1})
    assert fine.status_code == 200 and len(fine.headers["X-Request-Id"]) == 32
    other = await client.post("/echo", json={"a": 1})
    assert other.headers["X-Request-Id"] != fine.headers["X-Request-Id"]
    bad = await client.get("/boom", headers={"X-Request-Id": "no spaces\tor tabs"})
    assert bad.headers["X-Request-Id"] != "no spaces\tor tabs"
    assert bad.json()["error"]["request_id"] == bad.headers["X-Request-Id"]


async def test_outages_are_503_with_retry_after(client: httpx.AsyncClient) -> None:
    store = await client.get("/store-down")
    assert store.status_code == 503 and store.headers["Retry-After"] == "3"
    assert store.json()["error"]["code"] == "store_unavailable"
    vectors = await client.get("/vectors-down")
    assert vectors.status_code == 503 and vectors.headers["Retry-After"] == "1"
    limited = await client.get("/rate-limited")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"


def test_unavailable_errors_keep_retry_after_across_pickling() -> None:
    err = pickle.loads(pickle.dumps(StoreError("down", retry_after=4.0)))
    assert isinstance(err, Unavailable) and err.retry_after == 4.0
    assert (err.status, err.code) == (503, "store_unavailable")
    assert pickle.loads(pickle.dumps(Unavailable("down"))).retry_after == 1.0


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"max_tokens": 10**20}, "max_tokens"),
        ({"max_tokens": MAX_OUTPUT_TOKENS + 1}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"n": 10**6}, "n"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": -0.5}, "top_p"),
        ({"stop": ["x"] * 17}, "stop"),
    ],
)
async def test_absurd_chat_settings_are_refused_naming_the_field(
    client: httpx.AsyncClient, extra: dict[str, Any], field: str
) -> None:
    body = {"model": "local:local", "messages": [{"role": "user", "content": "hi"}], **extra}
    response = await client.post("/chat", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == f"body.{field}"
    fine = await client.post(
        "/chat", json={**body, **{k: ["x"] if k == "stop" else 1 for k in extra}}
    )
    assert fine.status_code == 200


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"max_tokens": 10**20}, "llmConfig.settings.max_tokens"),
        ({"max_completion_tokens": 10**7}, "llmConfig.settings.max_completion_tokens"),
        ({"temperature": float("nan")}, "llmConfig.settings.temperature"),
        ({"temperature": True}, "llmConfig.settings.temperature"),
        ({"top_p": float("inf")}, "llmConfig.settings.top_p"),
        ({"stop": 5}, "llmConfig.settings.stop"),
        ({"stop": ["a"] * 17}, "llmConfig.settings.stop"),
        ({"json_mode": "yes"}, "llmConfig.settings.json_mode"),
        ({"n": 2}, "llmConfig.settings.n"),
    ],
)
def test_absurd_workflow_llm_settings_are_refused_naming_the_field(
    settings: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_settings(settings)
    assert refused.value.field == field


# -- parsers that recurse --------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "(" * 600 + "1" + ")" * 600,
        "!" * 1500 + "true",
        "not " * 450 + "true",
        "(!" * 400 + "1" + ")" * 400,
    ],
)
def test_deep_conditions_are_refused_not_a_recursion_error(text: str) -> None:
    with pytest.raises(ConditionError, match="nested deeper than 32"):
        check_condition(text)
    with pytest.raises(ConditionError):
        evaluate_condition(text, Scope({}, {}))
    with pytest.raises(ValidationError) as refused:
        parse_definition({"steps": [{"step": 1, "target": "noop", "condition": text}]})
    assert refused.value.field == "steps[0].condition"
    depth = MAX_CONDITION_DEPTH
    assert evaluate_condition("(" * depth + "1 > 0" + ")" * depth, Scope({}, {}))


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 400 + "a" + ")" * 400,
        "[" * 400 + "a" + "]" * 400,
        "{a:" * 400 + "a" + "}" * 400,
        "!" * 600 + "a",
        "`" + "[" * 2000 + "]" * 2000 + "`",
        " | ".join(["a"] * 600),
        "a" * 5000,
    ],
)
def test_jmespath_expressions_past_the_limits_are_refused_naming_the_field(
    expression: str,
) -> None:
    definition = parse_definition(
        {
            "steps": [
                {
                    "step": 1,
                    "target": "transform",
                    "params": {"expression": expression, "input": {"a": 1}},
                }
            ]
        }
    )
    with pytest.raises(ValidationError) as refused:
        TransformTarget().validate(definition.steps[0], "steps[0]")
    assert refused.value.field == "steps[0].params.expression"
    assert "JMESPath" in refused.value.message


def test_jmespath_within_the_limits_still_works() -> None:
    data = {"people": [{"name": "a", "age": 40}, {"name": "b", "age": 20}]}
    assert transform("people[?age > `30`].name | [0]", data) == "a"
    assert transform("(" * 31 + "people[0].name" + ")" * 31, data) == "a"  # 32 levels
    assert transform(" | ".join(["@"] * 40), 5) == 5


def _doubling(pipes: int) -> str:
    return " | ".join(["[@, @]"] * pipes)


@pytest.mark.parametrize(
    "expression",
    [
        "|".join(["[@,@][]"] * 22),  # 176 bytes; unbounded: 4 million items, seconds of work
        "join('', [@, @])" + " | join('', [@, @])" * 30,  # a string of 2**31 characters
        f"{_doubling(30)} | to_string(@)",  # a billion leaves serialised
        f"[{_doubling(30)}, {_doubling(30)}] | [0] == [1]",  # two such values compared
        f"{_doubling(30)} | [*][*][*][*][*][*][*][*][*][*][*][*][*][*][*][*][*][*][*][*][*]",
    ],
)
def test_a_jmespath_expression_too_expensive_to_evaluate_fails_its_step_naming_it(
    expression: str,
) -> None:
    definition = parse_definition(
        {
            "steps": [
                {
                    "step": 1,
                    "target": "transform",
                    "params": {"expression": expression, "input": "{{params.s}}"},
                }
            ]
        }
    )
    TransformTarget().validate(definition.steps[0], "steps[0]")  # within the compile limits
    with pytest.raises(StepError) as failed:
        transform(expression, "ab")
    assert failed.value.code == "transform_failed" and failed.value.non_retryable
    assert "is too expensive" in failed.value.message
    assert expression[:40] in failed.value.message  # names the expression


def test_jmespath_evaluation_within_the_budget_still_works() -> None:
    assert len(transform("|".join(["[@,@][]"] * 10), "x")) == 1024
    assert len(transform(_doubling(40), "x")) == 2  # shared, not built: costs nothing
    items = {"items": [{"n": i, "name": f"n{i}"} for i in range(100_000)]}
    assert transform("sort_by(items, &n)[-1].name", items) == "n99999"
    assert transform("length(items[?n > `50000`])", items) == 49_999


FIELDS = {"author": "string", "year": "int", "score": "float", "draft": "bool"}


@pytest.mark.parametrize(
    "raw",
    [
        "(" * 600 + "year == 1" + ")" * 600,
        "not " * 600 + "year == 1",
        "year == 1e400",
        "score > 1e400",
        "score > -1e999",
        "year == " + "9" * 30,
        "author == '\\q'",
        'author == "\\ud800"',
        {"year": float("nan")},
        {"score": {"$gt": float("inf")}},
        {"year": {"$in": [1, 2**64]}},
        {"author": "\ud800"},
    ],
)
def test_bad_filters_are_refused_naming_the_field(raw: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        compile_filter(raw, FIELDS)
    assert refused.value.field == "filter"


def test_deep_json_filters_are_refused_without_recursion() -> None:
    nested: dict[str, Any] = {"year": 1}
    for _ in range(5000):  # deeper than json.dumps itself can go
        nested = {"$not": nested}
    with pytest.raises(ValidationError, match="nested at most 16"):
        compile_filter(nested, FIELDS)
    ok: dict[str, Any] = {"year": 1}
    for _ in range(MAX_FILTER_DEPTH - 2):
        ok = {"$not": ok}
    assert compile_filter(ok, FIELDS).startswith("not (")


def test_template_fallbacks_are_finite_and_shallow() -> None:
    for bad in ("params.x ?? 1e400", "params.x ?? " + "[" * 3000 + "]" * 3000):
        with pytest.raises(ValueError):
            parse_expression(bad)
    assert parse_expression("params.x ?? 2")[1].value == 2  # type: ignore[union-attr]


# -- budgets: refused and not stored; a stored bad one is reported, never a 500 ---------
@pytest.mark.parametrize(
    "amount", ["1e999999", "NaN", "Infinity", "-Infinity", "-1", "1e13", "sNaN", "12abc"]
)
async def test_an_absurd_budget_is_refused_and_nothing_is_stored(
    system: System, amount: str
) -> None:
    budgets = system.llm.budgets
    with pytest.raises(ValidationError) as refused:
        await budgets.set("team-absurd", amount, "month")
    assert refused.value.field == "amount" and refused.value.status == 400
    assert await system.store.get(BUDGETS, "team-absurd", "budget") is None
    assert await budgets.status("team-absurd") == {"budget": None}


async def test_a_stored_bad_budget_is_reported_and_refuses_priced_calls_with_a_4xx(
    system: System,
) -> None:
    budgets = system.llm.budgets
    await budgets.set("team-old", "10", "month")
    stored = scoped_id("team-old", "budget")  # the team's budget document
    await system.store.update(BUDGETS, "team-old", stored, {"amount": "1E+999999"})
    status = await budgets.status("team-old")
    assert status["budget"]["invalid"] is True and "PUT /v1/budget" in status["error"]
    with pytest.raises(BudgetExceeded) as refused:
        await budgets.reserve("team-old", Decimal("0.01"))
    assert refused.value.status == 402 and refused.value.code == "budget_invalid"
    assert await budgets.reserve("team-old", Decimal(0)) is None  # free calls still run
    await budgets.set("team-old", "5", "month")  # setting it again repairs it
    assert (await budgets.status("team-old"))["remaining"] == "5"


# -- Milvus errors name the field, never the generated expression ----------------------
async def test_milvus_errors_do_not_leak_the_generated_expression(milvus_uri: str) -> None:
    store = MilvusVectorStore(milvus_uri)
    try:
        await store.create_collection("lq_strict_input", 4, {"year": "int"})
        with pytest.raises(VectorStoreError) as failed:
            await store.query("lq_strict_input", "team-secret", "year === 1")
        err = failed.value
        assert err.field == "filter" and err.status == 503
        assert "team-secret" not in err.message and "team_id" not in err.message
        assert "===" not in err.message
    finally:
        await store.drop_collection("lq_strict_input")
        await store.close()


# -- properties: nothing but success or a 4xx ---------------------------------------------
CONDITION_TOKENS = st.sampled_from(
    ["(", ")", "!", "not ", " and ", " or ", "&&", "||", "==", "!=", ">", "<=", "1", "-2.5e3",
     "'a'", '"b"', "{{params.x}}", "{{step1.result.y??0}}", "true", "null", " ", "{{", "}}"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(CONDITION_TOKENS, max_size=400).map("".join), st.text(max_size=300)))
def test_no_condition_fails_other_than_as_invalid(text: str) -> None:
    try:
        check_condition(text)
    except (ConditionError, ValueError):
        return
    with contextlib.suppress(ConditionError, ValueError, LookupError):  # a missing reference
        evaluate_condition(text, Scope({"x": 1}, {1: {"y": 2}}))


FILTER_TOKENS = st.sampled_from(
    ["(", ")", "not ", " and ", " or ", "year", "author", "score", "==", ">=", " in ", "[", "]",
     ",", "1", "1e400", "99999999999999999999", "'x'", '"\\q"', "true", " "]
)  # fmt: skip
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
FILTER_KEYS = st.sampled_from(["year", "author", "score", "draft", "$and", "$or", "$not", "$in",
                               "$gt", "$nin", "$eq", "bogus"])  # fmt: skip
JSON_OBJECTS = st.recursive(
    st.dictionaries(FILTER_KEYS, JSON_SCALARS, max_size=3),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(FILTER_KEYS, inner, max_size=3)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(FILTER_TOKENS, max_size=300).map("".join), JSON_OBJECTS, st.text()))
def test_no_filter_fails_other_than_as_a_validation_error(raw: Any) -> None:
    try:
        out = compile_filter(raw, FIELDS)
    except ValidationError as exc:
        assert exc.field == "filter"
        return
    assert isinstance(out, str) and "inf" not in out.replace("info", "")


JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


def _post(body: bytes, content_type: str | None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=APP)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            headers = {"Content-Type": content_type} if content_type else {}
            return await http.post("/raw", content=body, headers=headers)

    return asyncio.run(go())


APP = make_app()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        JSON_VALUES.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "replace")),
        st.binary(max_size=200),
    ),
    st.sampled_from(CONTENT_TYPES),
)
def test_no_body_gets_a_5xx_from_the_json_middleware(body: bytes, content_type: str | None) -> None:
    response = _post(body, content_type)
    assert response.status_code in (200, 400, 413), response.text
    if response.status_code == 200 and body.strip():  # what passed is JSON a store can hold
        json.dumps(json.loads(body), allow_nan=False).encode("utf-8")
