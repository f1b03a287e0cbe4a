"""The whole HTTP API against generated and hostile request bodies (issue 9): no body gets a 5xx,
every 4xx is ``{"error": {"code", "message", ...}}`` naming the field at fault, every answer
arrives, and a refused request writes nothing.

Every route with a JSON body in the served ``/openapi.json`` gets bodies generated from its
schema, and hostile ones built from a body that works: a non-finite or out-of-range number as
raw JSON text (``NaN``, ``Infinity``, ``1e400``, past 64 bits), nesting past the depth limit, a
value of the wrong type, an unknown field, a string filling the body limit (or one byte past
it), strings that make parsers recurse or compute (conditions, JMESPath, cron, instants), a
body that is not an object or not JSON, under odd content types. Path parameters are the ids
of the test team's records or random text. Requests go through the app in process (no Ray),
each with a time limit, against a System whose runs execute on the app's event loop.

Hypothesis is derandomized and keeps no example database, so each run tries the same bodies.
(``hypothesis-jsonschema`` does not work with the Hypothesis this project uses, so bodies come
from a small generator over the schemas' keywords, :func:`from_schema`.)
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import json
import re
import sqlite3
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments.app import create_app
from deployments.limits import DEFAULT_MAX_JSON_DEPTH, ENVELOPE_LEVELS
from linqra.config import HttpSettings, Settings
from linqra.status import EXECUTION_TERMINAL, TASK_TERMINAL, DocumentStatus
from linqra.store.sqlite import SQLiteStore
from linqra.system import System
from tests.conftest import make_settings
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_openai import FakeOpenAI
from tests.support.http import until
from tests.support.servers import HttpService

# the app's event loop runs in another thread (runs, retries with jitter) while this one draws
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")

TEAM = "team-props"
REQUEST_TIMEOUT = 20.0
"""Seconds an answer may take; ``?wait`` and ``/linq`` wait at most ``WAIT_SECONDS``."""
WAIT_SECONDS = 3.0
MAX_BODY = 1024 * 1024
MAX_DEPTH = DEFAULT_MAX_JSON_DEPTH + ENVELOPE_LEVELS
BIG_BODY = 6 * 1024 * 1024
"""The refusal tests' body limit: room for params over the 4 MiB record limit."""
MODEL = "openai:gpt-4o-mini"
DOCUMENT_ENDED = (DocumentStatus.READY, DocumentStatus.FAILED)
PROPERTY_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
}


# -- the routes, from the schema the app serves ---------------------------------------------
@dataclass(frozen=True)
class BodyRoute:
    method: str
    path: str
    schema: dict[str, Any] = dataclasses.field(compare=False, repr=False)
    headers: tuple[str, ...] = dataclasses.field(default=(), compare=False)
    """The route's own header parameters (``If-Match``, ``X-Linqra-Signature``, …)."""

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def _resolve(node: Any, schemas: dict[str, Any]) -> Any:
    """``node`` with every ``#/components/schemas/…`` reference replaced by its schema."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            return _resolve(schemas[ref.rsplit("/", 1)[1]], schemas)
        return {k: _resolve(v, schemas) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, schemas) for v in node]
    return node


def body_routes(spec: dict[str, Any]) -> list[BodyRoute]:
    schemas = spec.get("components", {}).get("schemas", {})
    routes = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                schema = _resolve(content["application/json"]["schema"], schemas)
                headers = tuple(
                    p["name"]
                    for p in operation.get("parameters", ())
                    if p["in"] == "header" and p["name"] != "X-Team-Id"
                )
                routes.append(BodyRoute(method.upper(), path, schema, headers))
    return routes


ROUTES = body_routes(create_app(settings=Settings(data_dir=Path(tempfile.gettempdir()))).openapi())


ALERT_RULE = {
    "name": "backlog", "signal": "queue_backlog", "params": {"queue": "executions"},
    "comparison": ">=", "threshold": 1, "window": "5m", "for": "30s", "severity": "warning",
    "channels": [{"type": "event", "topic": "ops"}],
}  # fmt: skip


def good_bodies(ids: dict[str, str]) -> dict[str, Any]:
    """A body each route accepts for the test team's records, to build hostile ones from."""
    steps = [
        {
            "step": 1,
            "target": "transform",
            "params": {"expression": "x", "input": "{{params}}"},
            "condition": "{{params.x}} > 0",
        },
        {
            "step": 2,
            "target": "quotes-service",
            "action": "fetch",
            "intent": "/api/people/random",
            "params": {"i": "{{params.x}}"},
        },
    ]
    task = {"name": "sum", "type": "DATA_PROCESSING", "config": {"expression": "sum(values)"}}
    return {
        "POST /v1/workflows": {"name": "wf", "params": {"x": 1}, "steps": steps},
        "PUT /v1/workflows/{workflow_id}": {"name": "wf", "params": {"x": 2}, "steps": steps},
        "POST /v1/workflows/{workflow_id}/execute": {"params": {"x": 3}, "executedBy": "me"},
        "POST /v1/chat/completions": {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 16,
            "temperature": 0.5,
        },
        "PUT /v1/models/{model_id}/price": {"input": "1.5", "output": 2},
        "PUT /v1/budget": {"amount": "100", "period": "month"},
        "POST /v1/knowledge/collections": {"name": "notes", "metadata_fields": {"year": "int"}},
        "POST /v1/knowledge/collections/{collection_id}/documents": {
            "title": "a note",
            "text": "hello world",
            "metadata": {"year": 2024},
        },
        "POST /v1/knowledge/collections/{collection_id}/search": {
            "query": "hello",
            "top_k": 3,
            "filter": "year > 2000",
        },
        "POST /v1/agents": {"name": "agent", "max_concurrency": 2},
        "PUT /v1/agents/{agent_id}": {"name": "agent", "description": "d"},
        "POST /v1/agents/{agent_id}/tasks": {
            **task,
            "triggers": [{"type": "CRON", "cron": "0 0 12 ? * MON-FRI", "timezone": "UTC"}],
        },
        "POST /v1/tasks/execute-adhoc": {
            "config": {"steps": steps[:1]},
            "input": {"x": "hello"},
        },
        "PUT /v1/tasks/{task_id}": task,
        "POST /v1/tasks/{task_id}/execute": {"input": {"values": [1, 2]}},
        "POST /v1/events": {"topic": "orders", "payload": {"n": 1}},
        "POST /v1/hooks": {"topic": "orders", "description": "d"},
        "POST /v1/hooks/{hook_id}": {"order": {"n": 1}},
        "POST /v1/teams": {"id": "team-z", "name": "Z", "admin": "user-z"},
        "PUT /v1/members/{user_id}": {"role": "member", "status": "active"},
        "POST /v1/api-keys": {"name": "ci", "scopes": ["read", "execute"], "expires_in_days": 30},
        "PUT /v1/secrets/{provider}": {"value": "sk-test-" + "k" * 32},
        "POST /linq": {
            "link": {"target": "workflow", "action": "execute"},
            "query": {"workflowId": ids["workflow_id"], "params": {"x": 4}},
        },
        "POST /v1/assistants": {"name": "helper", "systemPrompt": "Be brief."},
        "PUT /v1/assistants/{assistant_id}": {"name": "helper", "doubleTexting": "enqueue"},
        "POST /v1/assistants/{assistant_id}/chat": {"message": "hello", "title": "hi"},
        "POST /v1/conversations/{conversation_id}/messages": {
            "message": "and then?",
            "clientMessageId": "m-1",
        },
        "PATCH /v1/conversations/{conversation_id}": {"title": "renamed"},
        "POST /assistants/search": {"limit": 5, "graph_id": "chat"},
        "POST /threads": {"metadata": {"from": "fuzz"}},
        **{
            f"POST {prefix}/{kind}": {
                "assistant_id": ids.get("assistant_id", "-"),
                "input": {"messages": [{"role": "user", "content": "hi"}]},
                **({"stream_mode": ["values"]} if kind == "runs/stream" else {}),
            }
            for prefix in ("/threads/{thread_id}", "")
            for kind in ("runs", "runs/stream", "runs/wait")
            if (prefix, kind) != ("", "runs")
        },
        "PUT /v1/alerts/secrets/{name}": {"value": "whsec-" + "s" * 24},
        "POST /v1/alerts/rules": ALERT_RULE,
        "PUT /v1/alerts/rules/{rule_id}": {**ALERT_RULE, "name": "renamed", "threshold": 2},
        "POST /api/milvus/collections/{name}/search": {
            "text": "hello",
            "topK": 2,
            "filter": "year > 2000",
        },
    }


# -- bodies from a schema -----------------------------------------------------------------
INT64 = 2**63 - 1
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-INT64 - 1, INT64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
LONGEST = 40
"""Generated strings and lists stay short (a hostile body tries the long ones)."""


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the JSON schema describes (the keywords pydantic's schemas use)."""
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(option) for option in schema[key]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}) for k in kind])
    if kind is None:
        kind = "object" if "properties" in schema else None
    examples = [st.sampled_from(schema["examples"])] if schema.get("examples") else []
    if kind == "string":
        low, high = schema.get("minLength", 0), min(schema.get("maxLength", LONGEST), LONGEST)
        if "pattern" in schema:
            text = st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda s: low <= len(s) <= schema.get("maxLength", len(s))
            )
        else:
            text = st.text(min_size=low, max_size=max(low, high))
        return st.one_of([*examples, text])
    if kind == "integer":
        low = schema.get("minimum", -INT64 - 1)
        high = schema.get("maximum", INT64)
        if "exclusiveMinimum" in schema:
            low = schema["exclusiveMinimum"] + 1
        return st.one_of([*examples, st.integers(int(low), int(high))])
    if kind == "number":
        bounds = {
            "min_value": schema.get("minimum", schema.get("exclusiveMinimum")),
            "max_value": schema.get("maximum"),
            "exclude_min": "exclusiveMinimum" in schema,
        }
        return st.one_of(
            [*examples, st.floats(allow_nan=False, allow_infinity=False, **bounds)]  # type: ignore[arg-type]
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(schema.get("items", {}))
        low = schema.get("minItems", 0)
        return st.lists(items, min_size=low, max_size=max(low, min(schema.get("maxItems", 4), 4)))
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fixed = st.fixed_dictionaries(
            {k: from_schema(v) for k, v in properties.items() if k in required},
            optional={k: from_schema(v) for k, v in properties.items() if k not in required},
        )
        extra = schema.get("additionalProperties", True)
        if extra is False:
            return fixed
        values = JSON_VALUES if extra is True else from_schema(extra)
        more = st.dictionaries(st.text(min_size=1, max_size=10), values, max_size=2)
        return st.builds(lambda a, b: {**b, **a}, fixed, more)
    return JSON_VALUES


# -- hostile bodies -----------------------------------------------------------------------
JsonPath = tuple[str | int, ...]
SPLICE = "@@linqra-splice@@"
BAD_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e999999",
    "9223372036854775808",
    "-9223372036854775809",
    "1" * 30,
    '"\\ud800"',  # an unpaired surrogate: no store can hold it as UTF-8
]
EVIL_STRINGS = [
    "(" * 3000,
    "(" * 200 + "1" + ")" * 200,
    "[" * 3000,
    "{{" * 2000,
    "{{params." + "a." * 2000 + "b}}",
    " | ".join(["[@, @][]"] * 25),
    "join(',', [@, @, @, @])" * 50,
    "not " * 3000 + "true",
    "{{params.x}} > 0 and " * 400 + "true",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "-999999999-01-01",
    "L-1W",
    "0 0 12 * * ? 2028-2026",
    "* * * * * ? *",
    "0/0 * * * * ?",
    "\x00",
    "../../etc/passwd",
    "x" * 300,
    "${" * 1000,
    "openai:gpt-4o",
]
CONTENT_TYPES = [
    "application/json",
    "application/json",
    "Application/JSON; charset=utf-8",
    "application/json; charset=latin-1",
    "application/x-json",
    "application/vnd.linqra+json",
    "text/plain",
    "text/json",
    "",
    None,
    "application/x-www-form-urlencoded",
    "application/octet-stream",
    "multipart/form-data",
    "multipart/form-data; boundary=xyz",
    "multipart/json",
]
NOT_OBJECTS = [
    b"",
    b" ",
    b"null",
    b"[]",
    b"[1, 2]",
    b'"text"',
    b"0",
    b"true",
    b"{",
    b'{"a": }',
    b"{'a': 1}",
    b'{"a": 1} trailing',
    b"\xff\xfe\xfd",
    b"\xef\xbb\xbf{}",
    '{"a": 1}'.encode("utf-16"),
    b"[" * 5000,
    b"{" * 5000,
    b'{"a":' * 40 + b"1" + b"}" * 40,
]
_IDENTIFIER = re.compile(r"^[A-Za-z_$][\w$-]*$")


def field_path(path: JsonPath) -> str:
    """The middleware's name for the value at ``path`` (``body.params.x``, ``body.a[2]``)."""
    text = "body"
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if _IDENTIFIER.match(part) else f"[{json.dumps(part)}]"
    return text


def value_paths(value: Any, prefix: JsonPath = ()) -> list[JsonPath]:
    found: list[JsonPath] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found += [(*prefix, key), *value_paths(child, (*prefix, key))]
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += [(*prefix, index), *value_paths(child, (*prefix, index))]
    return found


def set_at(value: Any, path: JsonPath, new: Any) -> Any:
    if not path:
        return new
    copied = copy.deepcopy(value)
    holder = copied
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = new
    return copied


def depth(value: Any) -> int:
    """Levels of ``[``/``{`` nesting (a scalar is 0)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            todo += [(child, level + 1) for child in children]
    return deepest


def nested(levels: int, kind: str) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value] if kind == "list" else {"a": value}
    return value


@dataclass
class Attempt:
    """One request and what it must get: ``refused`` a 4xx; ``status``, ``code``, ``field``
    exactly these when given."""

    method: str
    url: str
    content: bytes
    content_type: str | None
    what: str
    refused: bool = False
    status: int | None = None
    code: str | None = None
    field: str | None = None
    headers: dict[str, str | bytes] = dataclasses.field(default_factory=dict)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


@st.composite
def hostile(draw: st.DrawFn, base: Any, *, max_body: int | None) -> tuple[bytes, dict[str, Any]]:
    """A hostile body made from ``base``, and what the edge must answer to it (as keyword
    arguments of :class:`Attempt`). ``max_body``: the route's body limit (``None``: a larger
    one, whose bodies are not tried)."""
    kind = draw(st.sampled_from(["number", "deep", "type", "unknown", "huge", "evil", "whole"]))
    if kind == "whole":
        return draw(st.sampled_from(NOT_OBJECTS)), {}
    paths = value_paths(base)
    where: JsonPath = draw(st.sampled_from(paths)) if paths else ()
    if kind == "number":
        if not isinstance(base, dict):
            base, where = {}, ()
        holder = base
        for part in where[:-1]:
            holder = holder[part]
        if isinstance(holder, dict) and (not where or draw(st.booleans())):
            # a new field beside the chosen one
            where = (*where[:-1], draw(st.sampled_from(["x", "amount", "odd key", "\u00f1", "$y"])))
        token = draw(st.sampled_from(BAD_NUMBERS))
        text = json.dumps(set_at(base, where, SPLICE)).replace(f'"{SPLICE}"', token, 1)
        return text.encode(), {"refused": True, "code": "invalid_json", "field": field_path(where)}
    if kind == "deep":
        levels = draw(st.integers(1, 3 * MAX_DEPTH))
        body = set_at(base, where, nested(levels, draw(st.sampled_from(["list", "dict"]))))
        if depth(body) > MAX_DEPTH:
            return json.dumps(body).encode(), {"refused": True, "code": "too_deep", "field": "body"}
        return json.dumps(body).encode(), {}
    if kind == "type":
        return json.dumps(set_at(base, where, draw(JSON_VALUES))).encode(), {}
    if kind == "unknown":
        body = dict(base) if isinstance(base, dict) else {}
        body[draw(st.text(min_size=1, max_size=20))] = draw(JSON_VALUES)
        return json.dumps(body).encode(), {}
    if kind == "huge":
        limit = max_body or MAX_BODY
        room = limit - len(json.dumps(set_at(base, where, "")))
        sizes = [64 * 1024, room] + ([room + 1] if max_body else [])
        text = json.dumps(set_at(base, where, "x" * max(draw(st.sampled_from(sizes)), 0)))
        if len(text) > limit:
            return text.encode(), {"refused": True, "status": 413, "code": "payload_too_large"}
        return text.encode(), {}
    return json.dumps(set_at(base, where, draw(st.sampled_from(EVIL_STRINGS)))).encode(), {}


# -- the app in process -------------------------------------------------------------------
@dataclass
class Api:
    """The app on a TestClient (its lifespan opened the System on the client's event loop) and
    an ASGI client on the same loop, whose requests have a time limit."""

    http: TestClient
    asgi: httpx.AsyncClient
    ids: dict[str, str] = dataclasses.field(default_factory=dict)
    hook_secret: str = ""

    @property
    def system(self) -> System:
        return self.http.app.state.system  # type: ignore[attr-defined,no-any-return]

    def call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        assert self.http.portal is not None
        return self.http.portal.call(fn)

    def send(self, attempt: Attempt) -> httpx.Response:
        given = dict(attempt.headers)
        if attempt.content_type is not None:
            given["Content-Type"] = attempt.content_type
        headers = [  # as bytes: a value may be any Latin-1 text
            (name.encode(), value if isinstance(value, bytes) else value.encode("latin-1"))
            for name, value in given.items()
        ]

        async def request() -> httpx.Response:
            with anyio.fail_after(REQUEST_TIMEOUT):
                return await self.asgi.request(
                    attempt.method, attempt.url, content=attempt.content, headers=headers
                )

        try:
            return self.call(request)  # type: ignore[no-any-return]
        except TimeoutError:
            pytest.fail(f"no answer within {REQUEST_TIMEOUT:g}s: {describe(attempt)}")

    def json(self, method: str, url: str, body: Any = None, **kwargs: Any) -> Any:
        response = self.http.request(method, url, json=body, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    def snapshot(self) -> dict[str, dict[tuple[str, str], str]]:
        """Every document of every collection, of every team, as stored."""
        store = self.system.store
        assert isinstance(store, SQLiteStore)  # its collections are the tables c_<name>
        with closing(sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)) as db:
            tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        names = sorted(name[2:] for (name,) in tables if name.startswith("c_"))
        assert {"workflows", "executions", "agents", "tasks", "budgets", "hooks"} <= set(names)

        async def read() -> dict[str, dict[tuple[str, str], str]]:
            rows = {}
            for name in names:
                docs = await store.scan_all_teams(name, {}, limit=1_000_000)
                rows[name] = {(d["team_id"], d["id"]): json.dumps(d, sort_keys=True) for d in docs}
            return rows

        return self.call(read)  # type: ignore[no-any-return]


def describe(attempt: Attempt, response: httpx.Response | None = None) -> str:
    shown = attempt.content[:300] + (b"..." if len(attempt.content) > 300 else b"")
    text = f"{attempt.method} {attempt.url} [{attempt.what}] ({attempt.content_type}) {shown!r}"
    if response is not None:
        text += f" -> {response.status_code} {response.text[:500]}"
    return text


def check(attempt: Attempt, response: httpx.Response) -> None:
    where = describe(attempt, response)
    assert response.status_code < 500, where  # in process, with healthy servers: not even a 503
    if response.status_code < 400:
        assert not attempt.refused and attempt.status is None, where
        return
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        pytest.fail(f"not the error shape: {where}")
    assert isinstance(error, dict), where
    assert isinstance(error.get("code"), str) and error["code"], where
    assert isinstance(error.get("message"), str) and error["message"], where
    assert error.get("request_id") == response.headers.get("X-Request-Id"), where
    if response.status_code in (400, 413):  # bad input: the field at fault is named
        assert isinstance(error.get("field"), str) and error["field"], where
    if attempt.status is not None:
        assert response.status_code == attempt.status, where
    if attempt.code is not None:
        assert error["code"] == attempt.code, where
    if attempt.field is not None:
        assert error["field"] == attempt.field, where


@contextmanager
def open_api(settings: Settings) -> Iterator[Api]:
    headers = {"X-Team-Id": TEAM}
    with TestClient(create_app(settings=settings), headers=headers) as http:
        transport = httpx.ASGITransport(app=http.app)
        asgi = httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)
        try:
            api = Api(http, asgi)
            seed(api)
            yield api
        finally:
            api.call(asgi.aclose)


def seed(api: Api) -> None:
    """One record of each kind for the test team, every run of them ended."""
    ids = api.ids
    good = good_bodies({"workflow_id": "-"})
    workflow = api.json("POST", "/v1/workflows", good["POST /v1/workflows"])
    ids["workflow_id"] = workflow["id"]
    run = api.json("POST", f"/v1/workflows/{workflow['id']}/execute", {"params": {"x": 1}})
    ids["execution_id"] = run["id"]
    agent = api.json("POST", "/v1/agents", {"name": "seed"})
    ids["agent_id"] = agent["id"]
    task = api.json("POST", f"/v1/agents/{agent['id']}/tasks", good["PUT /v1/tasks/{task_id}"])
    ids["task_id"] = task["id"]
    tx = api.json("POST", f"/v1/tasks/{task['id']}/execute", {"input": {"values": [1]}})
    ids["tx_id"] = tx["id"]
    collection = api.json(
        "POST",
        "/v1/knowledge/collections",
        {"name": "seed-notes", "metadata_fields": {"year": "int"}},
    )
    ids["collection_id"] = collection["id"]
    ids["name"] = collection["name"]
    doc = api.json(
        "POST",
        f"/v1/knowledge/collections/{collection['id']}/documents",
        {"title": "seed", "text": "the seed document", "metadata": {"year": 2024}},
    )
    ids["doc_id"] = doc["id"]
    hook = api.json("POST", "/v1/hooks", {"topic": "orders"})
    ids["hook_id"] = hook["id"]
    api.hook_secret = hook["secret"]
    assistant = api.json("POST", "/v1/assistants", good["POST /v1/assistants"])
    ids["assistant_id"] = assistant["id"]
    chat = api.json("POST", f"/v1/assistants/{assistant['id']}/chat", {"message": "hi"})
    ids["conversation_id"] = chat["conversation_id"]
    ids["thread_id"] = chat["conversation_id"]  # a conversation is a LangGraph thread too
    ids["run_id"] = chat["run_id"]
    api.json("PUT", "/v1/budget", {"amount": "100"})
    api.json("PUT", f"/v1/models/{MODEL}/price", {"input": "1", "output": "2"})
    rule = api.json("POST", "/v1/alerts/rules", {**ALERT_RULE, "name": "seed-backlog"})
    ids["rule_id"] = rule["id"]
    ids["model_id"] = MODEL
    ids["version"] = "1"
    ids["dead_letter_id"] = "none-yet"
    ids["switch"] = "enable"
    ids["user_id"] = "seed-user"
    ids["provider"] = "openai"
    until(lambda: api.json("GET", f"/v1/executions/{run['id']}")["status"] in EXECUTION_TERMINAL)
    until(lambda: api.json("GET", f"/v1/task-executions/{tx['id']}")["status"] in TASK_TERMINAL)
    document = f"/v1/knowledge/collections/{collection['id']}/documents/{doc['id']}"
    until(lambda: api.json("GET", document)["status"] in DOCUMENT_ENDED)


def api_settings(
    root: Path,
    a: HttpService,
    b: HttpService,
    openai: FakeOpenAI,
    anthropic: FakeAnthropic,
    milvus: str,
    max_body: int,
) -> Settings:
    return make_settings(
        root,
        a,
        b,
        openai,
        anthropic,
        milvus=milvus,
        http=HttpSettings(max_body_bytes=max_body, wait_timeout_seconds=WAIT_SECONDS),
    )


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory,
    http_service: HttpService,
    http_service_b: HttpService,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    milvus_uri: str,
) -> Iterator[Api]:
    """The app the property tests hammer (their records pile up in it)."""
    root = tmp_path_factory.mktemp("fuzzed")
    services = (http_service, http_service_b, fake_openai, fake_anthropic, milvus_uri)
    with open_api(api_settings(root, *services, max_body=MAX_BODY)) as api:
        yield api


@pytest.fixture(scope="module")
def quiet(
    tmp_path_factory: pytest.TempPathFactory,
    http_service: HttpService,
    http_service_b: HttpService,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    milvus_uri: str,
) -> Iterator[Api]:
    """An app with nothing running, whose store only the refused requests could change."""
    root = tmp_path_factory.mktemp("quiet")
    services = (http_service, http_service_b, fake_openai, fake_anthropic, milvus_uri)
    with open_api(api_settings(root, *services, max_body=BIG_BODY)) as api:
        yield api


# -- every route, every body: never a 5xx ---------------------------------------------------
HEADER_VALUES = st.one_of(
    st.sampled_from([b"1", b'"1"', b"W/1", b"\xb2", b"\xb9", b"9" * 5000, b"-1", b"0"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=30).map(
        lambda text: text.strip().encode("latin-1")
    ),
)
RANDOM_IDS = st.text(min_size=1, max_size=140).map(lambda s: urllib.parse.quote(s, safe=""))


@st.composite
def urls(draw: st.DrawFn, route: BodyRoute, ids: dict[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        known = ids.get(name)
        choices = [st.just(urllib.parse.quote(known, safe=""))] * 3 if known else []
        return draw(st.one_of([*choices, RANDOM_IDS]))

    return re.sub(r"\{(\w+)\}", fill, route.path)


def sign_hook_call(api: Api, attempt: Attempt) -> None:
    """Sign ``attempt`` with the test hook's secret, now (``X-Linqra-Timestamp`` + ``v1=``)."""
    stamp = str(int(time.time()))
    digest = hmac.new(
        api.hook_secret.encode(), f"{stamp}.".encode() + attempt.content, hashlib.sha256
    ).hexdigest()
    attempt.headers["X-Linqra-Timestamp"] = stamp
    attempt.headers["X-Linqra-Signature"] = f"v1={digest}"


def signed(api: Api, attempt: Attempt, data: st.DataObject | None) -> Attempt:
    """A call of the test team's hook, signed with its secret (``data``: mostly)."""
    if attempt.url == f"/v1/hooks/{api.ids['hook_id']}" and (
        data is None or data.draw(st.integers(0, 4))
    ):
        sign_hook_call(api, attempt)
    return attempt


def test_every_route_with_a_json_body_is_tried(fuzzed: Api) -> None:
    served = body_routes(fuzzed.http.get("/openapi.json").json())
    assert sorted(r.key for r in served) == sorted(r.key for r in ROUTES)
    assert {r.key for r in ROUTES} == set(good_bodies(fuzzed.ids)), "a route without a good body"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.key)
def test_the_bodies_hostile_ones_are_made_from_are_accepted(fuzzed: Api, route: BodyRoute) -> None:
    body = json.dumps(good_bodies(fuzzed.ids)[route.key]).encode()
    url = route.path.format(**fuzzed.ids)
    attempt = Attempt(route.method, url, body, "application/json", "good")
    with_signature = signed(fuzzed, attempt, None)
    response = fuzzed.send(with_signature)
    assert response.status_code < 300, describe(attempt, response)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.key)
@settings(max_examples=10, **PROPERTY_SETTINGS)  # type: ignore[arg-type]
@given(data=st.data())
def test_no_body_from_the_schema_gets_a_5xx(
    fuzzed: Api, route: BodyRoute, data: st.DataObject
) -> None:
    body = data.draw(from_schema(route.schema), label="body")
    url = data.draw(urls(route, fuzzed.ids), label="url")
    attempt = Attempt(route.method, url, json.dumps(body).encode(), "application/json", "schema")
    for name in route.headers:  # as a client may send them: any Latin-1 text
        attempt.headers[name] = data.draw(HEADER_VALUES, label=name)
    attempt = signed(fuzzed, attempt, data)
    check(attempt, fuzzed.send(attempt))


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.key)
@settings(max_examples=25, **PROPERTY_SETTINGS)  # type: ignore[arg-type]
@given(data=st.data())
def test_no_hostile_body_gets_a_5xx_and_bad_values_are_named(
    fuzzed: Api, route: BodyRoute, data: st.DataObject
) -> None:
    good = good_bodies(fuzzed.ids)[route.key]
    base = data.draw(st.one_of(st.just(good), from_schema(route.schema)), label="base")
    upload = route.path.endswith("/documents")  # its limit is knowledge.max_upload_bytes
    content, expect = data.draw(hostile(base, max_body=None if upload else MAX_BODY), label="body")
    content_type = data.draw(st.sampled_from(CONTENT_TYPES), label="content type")
    url = data.draw(urls(route, fuzzed.ids), label="url")
    if upload and media_type(content_type) == "multipart/form-data":
        # a file upload is not decoded as JSON at the edge: the route refuses it as a bad form
        expect = {"refused": True} if expect else {}
    attempt = Attempt(route.method, url, content, content_type, "hostile", **expect)
    for name in route.headers:  # as a client may send them: any Latin-1 text
        attempt.headers[name] = data.draw(HEADER_VALUES, label=name)
    check(attempt, fuzzed.send(signed(fuzzed, attempt, data)))


# -- a refused request writes nothing ---------------------------------------------------------
STEP = '{"step": 1, "target": "transform", "params": {"expression": "x", "input": "{{params}}"}}'
TASK = '"name": "t", "type": "DATA_PROCESSING", "config": {"expression": "sum(values)"}'
OVER_RECORD = '"' + "x" * (4 * 1024 * 1024 + 1024) + '"'  # past the 4 MiB record limit
DEEP = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
BOUNDARY = "linqra-boundary"


def multipart(metadata: str) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        "Content-Type: text/plain\r\n\r\nhello\r\n",
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{metadata}\r\n',
        f"--{BOUNDARY}--\r\n",
    ]
    return "".join(parts).encode()


@dataclass(frozen=True)
class Refusal:
    """A request that must be refused with ``status`` naming ``field`` (and ``code``)."""

    name: str
    method: str
    url: str
    body: str | bytes
    status: int
    field: str | None
    code: str | None = None
    content_type: str = "application/json"
    headers: tuple[tuple[str, str | bytes], ...] = ()

    def attempt(self, api: Api) -> Attempt:
        content = self.body if isinstance(self.body, bytes) else self.body.encode()
        for name, value in api.ids.items():
            content = content.replace(f"{{{name}}}".encode(), value.encode())
        attempt = Attempt(
            self.method,
            self.url.format(**api.ids),
            content,
            self.content_type,
            self.name,
            refused=True,
            status=self.status,
            code=self.code,
            field=self.field,
            headers=dict(self.headers),
        )
        if "{hook_id}" in self.url:
            sign_hook_call(api, attempt)
        return attempt


WORKFLOW = "/v1/workflows/{workflow_id}"
DOCUMENTS = "/v1/knowledge/collections/{collection_id}/documents"
REFUSALS = [
    # budgets: the 1e999999 answered 500 and was stored
    Refusal("budget 1e999999", "PUT", "/v1/budget", '{"amount": 1e999999}', 400, "body.amount", "invalid_json"),
    Refusal("budget NaN", "PUT", "/v1/budget", '{"amount": NaN}', 400, "body.amount", "invalid_json"),
    Refusal("budget text 1e999999", "PUT", "/v1/budget", '{"amount": "1e999999"}', 400, "amount"),
    Refusal("budget text NaN", "PUT", "/v1/budget", '{"amount": "NaN"}', 400, "amount"),
    # prices
    Refusal("price NaN", "PUT", "/v1/models/{model_id}/price", '{"input": "NaN", "output": "1"}', 400, "input"),
    Refusal("price 1e400", "PUT", "/v1/models/{model_id}/price", '{"input": 1e400, "output": 1}', 400, "body.input", "invalid_json"),
    # workflows
    Refusal("workflow NaN param default", "POST", "/v1/workflows", f'{{"name": "w", "params": {{"x": NaN}}, "steps": [{STEP}]}}', 400, "body.params.x", "invalid_json"),
    Refusal("workflow bad JMESPath", "POST", "/v1/workflows", '{"name": "w", "steps": [{"step": 1, "target": "transform", "params": {"expression": "[[["}}]}', 400, "steps[0].params.expression"),
    Refusal("workflow deep condition", "POST", "/v1/workflows", f'{{"name": "w", "steps": [{{"step": 1, "target": "noop", "condition": "{"(" * 300}1{")" * 300}"}}]}}', 400, "steps[0].condition"),
    Refusal("workflow update Infinity", "PUT", WORKFLOW, f'{{"name": "w", "timeoutSeconds": Infinity, "steps": [{STEP}]}}', 400, "body.timeoutSeconds", "invalid_json"),
    Refusal("workflow update no steps", "PUT", WORKFLOW, '{"name": "w"}', 400, "steps"),
    Refusal("workflow update stale If-Match", "PUT", WORKFLOW, f'{{"name": "w", "steps": [{STEP}]}}', 409, None, headers=(("If-Match", '"99"'),)),
    Refusal("workflow update If-Match ²", "PUT", WORKFLOW, f'{{"name": "w", "steps": [{STEP}]}}', 400, "If-Match", headers=(("If-Match", b"\xb2"),)),
    Refusal("workflow update If-Match of 5000 digits", "PUT", WORKFLOW, f'{{"name": "w", "steps": [{STEP}]}}', 400, "If-Match", headers=(("If-Match", "9" * 5000),)),
    # executions
    Refusal("execute NaN param", "POST", WORKFLOW + "/execute", '{"params": {"x": NaN}}', 400, "body.params.x", "invalid_json"),
    Refusal("execute params over 4 MiB", "POST", WORKFLOW + "/execute", f'{{"params": {{"big": {OVER_RECORD}}}}}', 413, "params"),
    Refusal("execute body too deep", "POST", WORKFLOW + "/execute", f'{{"params": {{"a": {DEEP}}}}}', 400, "body", "too_deep"),
    Refusal("execute body too deep as text", "POST", WORKFLOW + "/execute", f'{{"params": {{"a": {DEEP}}}}}', 400, "body", "too_deep", content_type="text/plain"),
    Refusal("execute body over the limit", "POST", WORKFLOW + "/execute", '{"params": {"a": "' + "x" * BIG_BODY + '"}}', 413, "body", "payload_too_large"),
    Refusal("execute params not an object", "POST", WORKFLOW + "/execute", '{"params": 5}', 400, "params"),
    Refusal("resume a completed execution", "POST", "/v1/executions/{execution_id}/resume", "", 409, None),
    Refusal("linq Infinity param", "POST", "/linq", '{"link": {"target": "workflow", "action": "execute"}, "query": {"workflowId": "{workflow_id}", "params": {"x": -Infinity}}}', 400, "body.query.params.x", "invalid_json"),
    Refusal("linq params over 4 MiB", "POST", "/linq", '{"link": {"target": "workflow", "action": "execute"}, "query": {"workflowId": "{workflow_id}", "params": {"big": ' + OVER_RECORD + "}}}", 413, "query.params"),
    Refusal("linq unknown workflow", "POST", "/linq", '{"link": {"target": "workflow", "action": "execute"}, "query": {"workflowId": "wf_nope"}}', 404, "query.workflowId", "not_found"),
    # agents and tasks
    Refusal("agent 1e400", "POST", "/v1/agents", '{"name": "a", "max_concurrency": 1e400}', 400, "body.max_concurrency", "invalid_json"),
    Refusal("agent zero concurrency", "POST", "/v1/agents", '{"name": "a", "max_concurrency": 0}', 400, "max_concurrency"),
    Refusal("agent update empty name", "PUT", "/v1/agents/{agent_id}", '{"name": ""}', 400, "name"),
    Refusal("task bad cron", "POST", "/v1/agents/{agent_id}/tasks", f'{{{TASK}, "triggers": [{{"type": "CRON", "cron": "61 * * * * ?"}}]}}', 400, "triggers[0].cron.seconds"),
    Refusal("task descending year range", "POST", "/v1/agents/{agent_id}/tasks", f'{{{TASK}, "triggers": [{{"type": "CRON", "cron": "0 0 12 * * ? 2028-2026"}}]}}', 400, "triggers[0].cron.year"),
    Refusal("task update bad cron", "PUT", "/v1/tasks/{task_id}", f'{{{TASK}, "triggers": [{{"type": "CRON", "cron": "0 0 32 * * ?"}}]}}', 400, "triggers[0].cron.hours"),
    Refusal("task run NaN input", "POST", "/v1/tasks/{task_id}/execute", '{"input": {"values": [NaN]}}', 400, "body.input.values[0]", "invalid_json"),
    Refusal("task run input over 4 MiB", "POST", "/v1/tasks/{task_id}/execute", f'{{"input": {{"big": {OVER_RECORD}}}}}', 413, "input"),
    Refusal("ad hoc run input over 4 MiB", "POST", "/v1/tasks/execute-adhoc", f'{{"config": {{"steps": [{STEP}]}}, "input": {{"big": {OVER_RECORD}}}}}', 413, "input"),
    Refusal("ad hoc run without steps", "POST", "/v1/tasks/execute-adhoc", '{"config": {"steps": []}}', 400, "config.steps"),
    # the Knowledge Hub
    Refusal("collection 1e400", "POST", "/v1/knowledge/collections", '{"name": "c2", "dimension": 1e400}', 400, "body.dimension", "invalid_json"),
    Refusal("collection 2^64 chunk tokens", "POST", "/v1/knowledge/collections", '{"name": "c2", "chunk_tokens": 18446744073709551616}', 400, "body.chunk_tokens", "invalid_json"),
    Refusal("collection bad field name", "POST", "/v1/knowledge/collections", '{"name": "c2", "metadata_fields": {"Bad Name": "int"}}', 400, "metadata_fields.Bad Name"),
    Refusal("document NaN metadata", "POST", DOCUMENTS, '{"title": "t", "text": "x", "metadata": {"a": NaN}}', 400, "body.metadata.a", "invalid_json"),
    Refusal("document NaN metadata as multipart/json", "POST", DOCUMENTS, '{"title": "t", "text": "x", "metadata": {"a": NaN}}', 400, "body.metadata.a", "invalid_json", content_type="multipart/json"),
    Refusal("document multipart NaN metadata", "POST", DOCUMENTS, multipart('{"a": NaN}'), 400, "metadata.a", "invalid_json", content_type=f"multipart/form-data; boundary={BOUNDARY}"),
    # events and webhooks
    Refusal("event NaN payload", "POST", "/v1/events", '{"topic": "t", "payload": {"x": NaN}}', 400, "body.payload.x", "invalid_json"),
    Refusal("event empty topic", "POST", "/v1/events", '{"topic": "", "payload": {}}', 400, "topic"),
    Refusal("hook empty topic", "POST", "/v1/hooks", '{"topic": ""}', 400, "topic"),
    Refusal("hook NaN description", "POST", "/v1/hooks", '{"topic": "t", "description": NaN}', 400, "body.description", "invalid_json"),
    Refusal("secret for an unknown provider", "PUT", "/v1/secrets/nowhere", '{"value": "sk-0123456789"}', 400, "provider"),
    Refusal("secret too short", "PUT", "/v1/secrets/{provider}", '{"value": "sk-1"}', 400, "value"),
    Refusal("secret with a line break", "PUT", "/v1/secrets/{provider}", '{"value": "sk-01234\\n56789"}', 400, "value"),
    Refusal("secret NaN", "PUT", "/v1/secrets/{provider}", '{"value": NaN}', 400, "body.value", "invalid_json"),
    Refusal("signed webhook call not JSON", "POST", "/v1/hooks/{hook_id}", "not json", 400, "body", content_type="text/plain"),
    Refusal("signed webhook call NaN as multipart", "POST", "/v1/hooks/{hook_id}", '{"a": NaN}', 400, "body.a", "invalid_json", content_type="multipart/form-data"),
    Refusal("signed webhook call too deep as multipart", "POST", "/v1/hooks/{hook_id}", "[" * 5000, 400, "body", "too_deep", content_type="multipart/form-data"),
]  # fmt: skip


def changes(before: dict[str, dict[Any, str]], after: dict[str, dict[Any, str]]) -> list[str]:
    found = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, {}), after.get(name, {})
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                what = "added" if key not in old else "removed" if key not in new else "changed"
                found.append(f"{name} {key} {what}: {(new.get(key) or old.get(key, ''))[:300]}")
    return found


@pytest.mark.parametrize("case", REFUSALS, ids=lambda c: c.name)
def test_a_refused_request_writes_nothing(quiet: Api, case: Refusal) -> None:
    attempt = case.attempt(quiet)
    before = quiet.snapshot()
    response = quiet.send(attempt)
    check(attempt, response)
    assert changes(before, quiet.snapshot()) == [], describe(attempt, response)
