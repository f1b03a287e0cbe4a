"""Security headers and CORS on the real app, in process (deployments/headers.py): the headers
on every answer, console origins from ``http.cors_origins``, widget keys echoing only the
origins their own check accepts, preflights answered without a credential, request ids."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deployments.app import create_app
from deployments.headers import EXPOSED_HEADERS
from linqra.config import HttpSettings, Settings
from linqra.errors import Unavailable

CONSOLE = "https://console.example"
SHOP = "https://shop.example"
EVIL = "https://evil.example"
TEAM_A = {"X-Team-Id": "team-a"}
NOOP = {"name": "w", "steps": [{"step": 1, "target": "noop"}]}


def _cors(response: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("access-")}


@pytest.fixture
def console(settings: Settings) -> Iterator[TestClient]:
    """The app with one console origin, and no default headers (a browser's preflight sends
    no credential)."""
    http = HttpSettings.model_validate({**settings.http.model_dump(), "cors_origins": [CONSOLE]})
    with TestClient(create_app(settings=settings.model_copy(update={"http": http}))) as client:
        yield client


def _widget_key(client: TestClient, headers: dict[str, str], resource: str) -> str:
    answer = client.post(
        "/v1/api-keys",
        json={"name": "site", "kind": "widget", "resource": resource, "allowed_origins": [SHOP]},
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["key"])


# -- security headers -----------------------------------------------------------------------
def test_every_answer_carries_the_security_headers_and_a_request_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {
        "2xx": client.get("/healthz"),
        "400": client.post("/v1/workflows", content=b"{not json"),
        "404": client.get("/v1/workflows/wf_missing"),
        "401": client.get("/v1/workflows", headers={"X-API-Key": "lq_not_a_key"}),
        "413": client.post("/v1/workflows", content=b"x" * (2 * 1024 * 1024)),
    }

    async def restarting() -> dict[str, Any]:
        raise Unavailable("the runner is restarting")

    monkeypatch.setattr(client.app.state.system.launcher, "ping", restarting)  # type: ignore[attr-defined]
    answers["503"] = client.get("/readyz")  # /healthz answers from its last check
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {"2xx": 200, "400": 400, "404": 404, "401": 401, "413": 413, "503": 503}
    ids = set()
    for name, answer in answers.items():
        headers = answer.headers
        assert headers["X-Content-Type-Options"] == "nosniff", name
        assert headers["Referrer-Policy"] == "no-referrer", name
        assert headers["X-Frame-Options"] == "DENY", name
        assert headers["Content-Security-Policy"] == "frame-ancestors 'none'", name
        assert headers["Cache-Control"] == "no-store", name
        assert "Strict-Transport-Security" not in headers, name  # plain HTTP here
        assert _cors(answer) == {}, name  # no Origin, no CORS
        ids.add(headers["X-Request-Id"])
        assert headers.get_list("X-Request-Id") == [headers["X-Request-Id"]], name
        if answer.status_code >= 400 and name != "503":
            assert answer.json()["error"]["request_id"] == headers["X-Request-Id"], name
    assert len(ids) == len(answers)
    assert answers["401"].headers["WWW-Authenticate"].startswith("Bearer")


def test_the_offline_docs_assets_keep_their_own_caching(client: TestClient) -> None:
    asset = client.get("/docs-assets/swagger-ui.css")
    assert asset.status_code == 200
    assert asset.headers["Cache-Control"] == "public, max-age=86400"
    assert asset.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/openapi.json").headers["Cache-Control"] == "no-store"


# -- CORS for consoles ----------------------------------------------------------------------
def test_no_cors_headers_for_any_origin_by_default(client: TestClient) -> None:
    plain = client.get("/v1/workflows", headers={"Origin": CONSOLE})
    assert plain.status_code == 200 and _cors(plain) == {}
    # a console's preflight (X-Team-Id) is not a widget's: refused, nothing allowed
    preflight = client.options(
        "/v1/workflows",
        headers={
            "Origin": CONSOLE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-team-id",
        },
    )
    assert preflight.status_code == 400 and "access-control-allow-origin" not in _cors(preflight)


def test_a_console_origin_is_answered_without_a_credential_and_reads_the_headers(
    console: TestClient,
) -> None:
    preflight = console.options(
        "/v1/workflows",
        headers={
            "Origin": CONSOLE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-team-id",
        },
    )
    assert preflight.status_code == 200, preflight.text
    allowed = _cors(preflight)
    assert allowed["access-control-allow-origin"] == CONSOLE
    assert "POST" in allowed["access-control-allow-methods"]
    assert "x-team-id" in allowed["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed
    assert preflight.headers["X-Request-Id"] and preflight.headers["X-Frame-Options"] == "DENY"

    created = console.post("/v1/workflows", json=NOOP, headers={**TEAM_A, "Origin": CONSOLE})
    unsigned = console.get("/v1/workflows", headers={"Origin": CONSOLE})  # no team: 401
    assert (created.status_code, unsigned.status_code) == (201, 401)
    for answer in (created, unsigned):  # the page reads errors and their headers too
        cors = _cors(answer)
        assert cors["access-control-allow-origin"] == CONSOLE
        exposed = {h.strip() for h in cors["access-control-expose-headers"].split(",")}
        assert exposed == set(EXPOSED_HEADERS)
        assert "access-control-allow-credentials" not in cors

    other = console.get("/v1/workflows", headers={**TEAM_A, "Origin": EVIL})
    assert other.status_code == 200 and _cors(other) == {}


# -- CORS for widget keys -------------------------------------------------------------------
def test_a_widget_key_is_readable_only_from_the_origins_it_allows(console: TestClient) -> None:
    workflow = console.post("/v1/workflows", json=NOOP, headers=TEAM_A).json()["id"]
    key = {"X-API-Key": _widget_key(console, TEAM_A, workflow)}
    run = f"/v1/workflows/{workflow}/execute"

    ran = console.post(run, json={}, headers={**key, "Origin": SHOP})
    assert ran.status_code == 202, ran.text
    cors = _cors(ran)
    assert cors["access-control-allow-origin"] == SHOP
    assert set(cors["access-control-expose-headers"].split(", ")) == set(EXPOSED_HEADERS)
    assert "Origin" in ran.headers["Vary"]
    # authenticated from its origin, refused a scope: the page can read why
    scoped = console.get("/v1/models", headers={**key, "Origin": SHOP})
    assert scoped.status_code == 403 and _cors(scoped)["access-control-allow-origin"] == SHOP

    # the widget check refuses these, and CORS allows none of them to be read
    for origin in (EVIL, CONSOLE, None):  # CONSOLE is a console origin, not this key's
        headers = {**key, **({"Origin": origin} if origin else {})}
        refused = console.post(run, json={}, headers=headers)
        assert refused.status_code == 403, origin
        assert refused.json()["error"]["field"] == "Origin"
        assert "access-control-allow-origin" not in _cors(refused), origin
    bearer = {"Authorization": f"Bearer {key['X-API-Key']}", "Origin": CONSOLE}
    assert "access-control-allow-origin" not in _cors(console.post(run, json={}, headers=bearer))


def test_a_widget_preflight_allows_the_widget_shape_only(console: TestClient) -> None:
    def preflight(method: str, headers: str, origin: str = SHOP) -> Any:
        return console.options(
            "/v1/workflows/wf_any/execute",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": headers,
            },
        )

    fine = preflight("POST", "content-type, x-api-key")
    assert fine.status_code == 200, fine.text  # no credential needed
    assert fine.headers["Access-Control-Allow-Origin"] == SHOP
    assert fine.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert "x-api-key" in fine.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in fine.headers
    assert fine.headers["X-Request-Id"]
    method, headers = preflight("DELETE", "x-api-key"), preflight("POST", "x-team-id")
    for refused, field in ((method, "Method"), (headers, "Headers")):
        assert refused.status_code == 400
        assert refused.json()["error"]["field"] == f"Access-Control-Request-{field}"
        assert _cors(refused) == {}


def test_an_api_key_from_a_web_page_gets_no_cors(client: TestClient) -> None:
    issued = client.post("/v1/api-keys", json={"name": "ci", "scopes": ["read"]}).json()
    answer = client.get(
        "/v1/workflows", headers={"X-Team-Id": "", "X-API-Key": issued["key"], "Origin": SHOP}
    )
    assert answer.status_code == 200 and _cors(answer) == {}
