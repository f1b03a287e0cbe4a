"""Who may call what, in process: every route's declared permission, API keys and widget keys,
members, and the audit log (header mode; OIDC sign-in is in tests/test_auth_oidc.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from deployments.app import api_routes, create_app
from deployments.auth import route_permission
from linqra.config import AuthSettings, RateLimitSettings, Settings

PUBLIC_ROUTES = {("POST", "/v1/hooks/{hook_id}"), ("GET", "/healthz"), ("GET", "/readyz")}


def test_every_route_declares_one_permission(client: TestClient) -> None:
    declared: dict[tuple[str, str], str | None] = {}
    for route in api_routes(client.app):  # type: ignore[arg-type]
        permission = route_permission(route)  # LookupError unless exactly one
        if route.include_in_schema:  # the docs pages are public too
            declared.update({(method, route.path): permission for method in route.methods})
    public = {key for key, permission in declared.items() if permission is None}
    assert public == PUBLIC_ROUTES
    assert len(declared) > 60
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation["x-linqra-permission"] == (
                declared[(method.upper(), path)] or "public"
            )
    # the table in linqra.auth.principal, spot-checked
    assert declared[("GET", "/v1/workflows")] == "read"
    assert declared[("POST", "/v1/workflows")] == "write"
    assert declared[("POST", "/v1/workflows/{workflow_id}/execute")] == "execute"
    assert declared[("PUT", "/v1/budget")] == "admin"
    assert declared[("POST", "/v1/api-keys")] == "manage_access"


def _key(client: TestClient, **body: Any) -> dict[str, Any]:
    answer = client.post("/v1/api-keys", json={"name": "ci", **body})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_api_key_scopes_team_and_revocation(client: TestClient) -> None:
    issued = _key(client, scopes=["read", "execute"])
    secret = issued["key"]
    assert secret.startswith("lq_") and len(secret) >= 60 and issued["role"] == "admin"
    reader = {"Authorization": f"Bearer {secret}"}

    created = client.post("/v1/workflows", json={"name": "w", "steps": [
        {"step": 1, "target": "noop"}]}).json()  # fmt: skip
    # no X-Team-Id needed: the key names its team
    got = client.get(f"/v1/workflows/{created['id']}", headers={"X-Team-Id": "", **reader})
    assert got.status_code == 200
    me = client.get("/v1/me", headers={"X-API-Key": secret}).json()
    assert me["source"] == "api_key" and me["team_id"] == "team-a" and me["key_id"] == issued["id"]

    denied = client.post("/v1/workflows", json={"name": "x", "steps": []}, headers=reader)
    assert denied.status_code == 403 and "write scope" in denied.json()["error"]["message"]
    # a key never manages keys, whatever its scopes
    assert client.post("/v1/api-keys", json={"name": "k"}, headers=reader).status_code == 403
    # the key is team-a's: naming another team is refused
    other = client.get("/v1/workflows", headers={**reader, "X-Team-Id": "team-b"})
    assert other.status_code == 403

    listed = client.get("/v1/api-keys").json()
    assert listed["total"] == 1 and "key" not in listed["items"][0]
    assert "hash" not in listed["items"][0] and secret not in str(listed)

    revoked = client.delete(f"/v1/api-keys/{issued['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    refused = client.get("/v1/workflows", headers=reader)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert refused.json()["error"]["message"] == "invalid API key"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer lq_0000000000000000_" + "A" * 43},  # unknown key
        {"Authorization": "Bearer lq_short"},  # malformed
        {"X-API-Key": "lq_pub_0000000000000000_" + "A" * 43},
        {"Authorization": "Basic dXNlcjpwYXNz"},  # not a bearer credential
        {"Authorization": "Bearer "},
    ],
)
def test_bad_credentials_are_401(client: TestClient, headers: dict[str, str]) -> None:
    answer = client.get("/v1/workflows", headers=headers)  # fast: B12 measures how fast
    assert answer.status_code == 401, answer.text
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_header_mode_ignores_a_bearer_that_is_not_a_key(client: TestClient) -> None:
    """OpenAI SDK clients always send an api_key: in header mode X-Team-Id decides."""
    answer = client.get("/v1/me", headers={"Authorization": "Bearer sk-anything"})
    assert answer.status_code == 200 and answer.json()["source"] == "header"
    alone = client.get("/v1/me", headers={"Authorization": "Bearer sk-x", "X-Team-Id": ""})
    assert alone.status_code == 401


def test_two_different_credentials_are_400(client: TestClient) -> None:
    one, two = _key(client)["key"], _key(client)["key"]
    answer = client.get(
        "/v1/workflows", headers={"Authorization": f"Bearer {one}", "X-API-Key": two}
    )
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "Authorization"


def test_key_role_never_exceeds_its_creator_and_scopes_are_checked(client: TestClient) -> None:
    viewer = _key(client, role="viewer", scopes=["read", "write"])
    headers = {"X-API-Key": viewer["key"]}
    # write scope, but the viewer role: still 403
    answer = client.post("/v1/workflows", json={"name": "x", "steps": []}, headers=headers)
    assert answer.status_code == 403 and "member role" in answer.json()["error"]["message"]
    bad = client.post("/v1/api-keys", json={"name": "x", "scopes": ["manage_access"]})
    assert bad.status_code == 400 and bad.json()["error"]["field"].startswith("scopes")
    assert client.post("/v1/api-keys", json={"name": "x", "kind": "root"}).status_code == 400


def test_widget_key_only_from_its_origins_and_only_execute(client: TestClient) -> None:
    missing = client.post("/v1/api-keys", json={"name": "site", "kind": "widget"})
    assert missing.status_code == 400
    bound = client.post(
        "/v1/workflows", json={"name": "w", "steps": [{"step": 1, "target": "noop"}]}
    )
    other = client.post(
        "/v1/workflows", json={"name": "o", "steps": [{"step": 1, "target": "noop"}]}
    )
    widget = _key(
        client, kind="widget", resource=bound.json()["id"], allowed_origins=["https://shop.example"]
    )
    assert widget["key"].startswith("lq_pub_") and widget["scopes"] == ["execute"]
    rotated = client.post(f"/v1/api-keys/{widget['id']}/rotate")
    assert rotated.status_code == 200 and rotated.json()["id"] == widget["id"]
    old_origin = {"X-API-Key": widget["key"], "Origin": "https://shop.example"}
    run = f"/v1/workflows/{bound.json()['id']}/execute"
    assert client.post(run, headers=old_origin).status_code == 401  # the old secret is gone
    widget = {**widget, "key": rotated.json()["key"]}
    key = {"X-API-Key": widget["key"]}
    assert client.get("/v1/models", headers=key).status_code == 403  # no origin
    foreign = client.get("/v1/models", headers={**key, "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    allowed = {**key, "Origin": "https://shop.example"}
    # from its origin, still only its widget's routes (the assistants' chat): not these
    for method, path in (("GET", "/v1/models"), ("GET", "/v1/me"), ("POST", "/v1/chat/completions"),
                         ("POST", "/v1/tasks/execute-adhoc")):  # fmt: skip
        answer = client.request(method, path, headers=allowed, json={})
        assert answer.status_code == 403, (path, answer.text)
        assert "widget" in answer.json()["error"]["message"]
    # its one workflow runs; another of the team's is not found for it
    ran = client.post(f"/v1/workflows/{bound.json()['id']}/execute", headers=allowed)
    assert ran.status_code == 202, ran.text
    elsewhere = client.post(f"/v1/workflows/{other.json()['id']}/execute", headers=allowed)
    assert elsewhere.status_code == 404


def test_members_last_admin_and_audit_log(client: TestClient) -> None:
    assert client.put("/v1/members/alice", json={"role": "admin"}).status_code == 200
    assert client.put("/v1/members/bob", json={"role": "viewer"}).json()["role"] == "viewer"
    bad = client.put("/v1/members/bob", json={"role": "owner"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "role"
    last = client.put("/v1/members/alice", json={"role": "member"})
    assert last.status_code == 409
    assert client.delete("/v1/members/alice").status_code == 409
    assert client.delete("/v1/members/bob").status_code == 204
    assert client.delete("/v1/members/bob").status_code == 404
    members = client.get("/v1/members").json()
    assert [m["user_id"] for m in members["items"]] == ["alice"]

    key = _key(client)
    client.delete(f"/v1/api-keys/{key['id']}")
    client.get("/v1/workflows", headers={"X-API-Key": key["key"]})  # 401, audited
    client.put("/v1/budget", json={"amount": "5.00"})

    events = client.get("/v1/audit", params={"limit": 100}).json()["items"]
    actions = [e["action"] for e in events]
    for expected in (
        "member.set",
        "member.remove",
        "api_key.create",
        "api_key.revoke",
        "budget.set",
    ):
        assert expected in actions, (expected, actions)
    # a refused change changed nothing: no event (401s and 403s are the exception)
    assert not [e for e in events if e["action"] == "member.set" and e["status"] == 409]
    assert all(e["request_id"] and e["team"] == "team-a" for e in events)
    assert key["key"] not in str(events)
    only = client.get("/v1/audit", params={"action": "api_key.create"}).json()
    assert only["total"] == 1 and only["items"][0]["resource"] == "POST /v1/api-keys"
    assert client.get("/v1/audit", params={"since": "yesterday"}).status_code == 400


async def test_failed_sign_in_is_audited_without_the_credential(settings: Settings) -> None:
    app = create_app(settings=settings)
    transport = httpx.ASGITransport(app=app)
    forged = "lq_0123456789abcdef_" + "B" * 43
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            answer = await http.get("/v1/workflows", headers={"Authorization": f"Bearer {forged}"})
            assert answer.status_code == 401
        system = app.state.system
        events = await system.store.find("audit_events", "_platform", {"action": "auth.failed"})
        assert events and events[0]["outcome"] == "denied" and events[0]["status"] == 401
        assert forged not in str(events) and "B" * 43 not in str(events)


async def test_revocation_reaches_another_replica_within_the_cache_bound(
    settings: Settings,
) -> None:
    """Two gateway replicas (two apps, two Systems) over one store: a key revoked on one stops
    working on the other within ``auth.key_cache_seconds``."""
    tuned = settings.model_copy(update={"auth": AuthSettings(key_cache_seconds=1.0)})
    one, two = create_app(settings=tuned), create_app(settings=tuned)
    async with one.router.lifespan_context(one), two.router.lifespan_context(two):
        a = httpx.AsyncClient(transport=httpx.ASGITransport(app=one), base_url="http://a")
        b = httpx.AsyncClient(transport=httpx.ASGITransport(app=two), base_url="http://b")
        async with a, b:
            issued = (await a.post(
                "/v1/api-keys", json={"name": "x"}, headers={"X-Team-Id": "team-a"})).json()  # fmt: skip
            key = {"X-API-Key": issued["key"]}
            assert (await b.get("/v1/workflows", headers=key)).status_code == 200  # cached in b
            await a.delete(f"/v1/api-keys/{issued['id']}", headers={"X-Team-Id": "team-a"})
            revoked_at = time.monotonic()
            while (await b.get("/v1/workflows", headers=key)).status_code == 200:
                assert time.monotonic() - revoked_at < 5.0, "still accepted after 5 s"
                await asyncio.sleep(0.02)
            assert time.monotonic() - revoked_at <= 5.0  # the documented bound


async def test_rate_limits_are_shared_by_replicas_through_redis(
    settings: Settings, redis_url: str
) -> None:
    """Two gateway replicas (two apps) counting in one redis-server: a team limit of 5 a minute
    allows 5 requests in all, then 429 with Retry-After and X-RateLimit-* headers."""
    team = f"rl-{time.monotonic_ns()}"  # a fresh counter in the shared server
    limits = RateLimitSettings(team="5/minute", failed_auth="3/minute")
    tuned = settings.model_copy(update={"cache_url": redis_url, "rate_limits": limits})
    one, two = create_app(settings=tuned), create_app(settings=tuned)
    async with one.router.lifespan_context(one), two.router.lifespan_context(two):
        a = httpx.AsyncClient(transport=httpx.ASGITransport(app=one), base_url="http://a")
        b = httpx.AsyncClient(transport=httpx.ASGITransport(app=two), base_url="http://b")
        async with a, b:
            codes = []
            for i in range(8):
                http = a if i % 2 else b
                answer = await http.get("/v1/workflows", headers={"X-Team-Id": team})
                codes.append(answer.status_code)
                if answer.status_code == 200:
                    assert int(answer.headers["X-RateLimit-Limit"]) == 5
            assert codes == [200] * 5 + [429] * 3
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.headers["X-RateLimit-Remaining"] == "0"
            assert answer.json()["error"]["code"] == "rate_limited"

            bad = {"X-API-Key": "lq_0123456789abcdef_" + "C" * 43}
            failed = [(await a.get("/v1/workflows", headers=bad)).status_code for _ in range(5)]
            assert failed == [401, 401, 401, 429, 429]


async def test_audit_events_past_the_retention_are_pruned(system: Any) -> None:
    await system.audit.record(team="team-a", actor="u", action="api_key.create", outcome="success")
    await system.audit.record(team="team-b", actor="u", action="member.set", outcome="success")
    old = await system.store.find("audit_events", "team-a")
    await system.store.update(
        "audit_events", "team-a", old[0]["id"], {"at": "2001-01-01T00:00:00.000000Z"}
    )
    assert await system.audit.prune() == 1
    assert [e.action for e in (await system.audit.events("team-a"))[0]] == []
    assert (await system.audit.events("team-b"))[1] == 1


def test_llm_tokens_per_minute_per_team(settings: Settings) -> None:
    """Each call spends its prompt and its output allowance before the provider is asked."""
    tuned = settings.model_copy(update={"rate_limits": RateLimitSettings(llm_tokens="200/minute")})
    with TestClient(create_app(settings=tuned), headers={"X-Team-Id": "team-t"}) as http:
        body = {"model": "local:echo", "messages": [{"role": "user", "content": "hi"}]}
        first = http.post("/v1/chat/completions", json={**body, "max_tokens": 100})
        assert first.status_code == 200, first.text
        refused = http.post("/v1/chat/completions", json={**body, "max_tokens": 150})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["message"].startswith("rate limit 'llm_tokens'")
        other = http.post(
            "/v1/chat/completions", json={**body, "max_tokens": 150}, headers={"X-Team-Id": "t2"}
        )
        assert other.status_code == 200  # another team's tokens


def test_foreign_api_key_headers_and_scheme_case(client: TestClient) -> None:
    """An X-API-Key that is not ours is a 401 in header mode too (never read as a JWT), and the
    bearer scheme is case-insensitive."""
    answer = client.get("/v1/me", headers={"X-API-Key": "sk-ant-something"})
    assert answer.status_code == 401 and answer.json()["error"]["field"] == "X-API-Key"
    key = _key(client)["key"]
    lower = client.get("/v1/me", headers={"Authorization": f"bearer {key}"})
    assert lower.status_code == 200 and lower.json()["source"] == "api_key"


def test_a_widget_flood_does_not_spend_the_teams_requests(settings: Settings) -> None:
    team = f"wf-{time.monotonic_ns()}"
    limits = RateLimitSettings(widget="2/minute", team="6/minute")
    tuned = settings.model_copy(update={"rate_limits": limits})
    with TestClient(create_app(settings=tuned), headers={"X-Team-Id": team}) as http:
        wf = http.post(
            "/v1/workflows", json={"name": "w", "steps": [{"step": 1, "target": "noop"}]}
        )
        widget = http.post("/v1/api-keys", json={
            "name": "site", "kind": "widget", "resource": wf.json()["id"],
            "allowed_origins": ["https://shop.example"]}).json()  # fmt: skip
        page = {"X-API-Key": widget["key"], "Origin": "https://shop.example", "X-Team-Id": ""}
        run = f"/v1/workflows/{wf.json()['id']}/execute?wait=true"
        codes = [http.post(run, headers=page).status_code for _ in range(6)]
        assert codes == [200, 200, 429, 429, 429, 429]
        # the team spent 2 (create, key) + 2 (the widget's runs): 2 requests are left
        assert [http.get("/v1/workflows").status_code for _ in range(3)] == [200, 200, 429]


def test_widget_answers_carry_the_outcome_only_and_runs_record_the_key(client: TestClient) -> None:
    wf = client.post("/v1/workflows", json={"name": "w", "steps": [
        {"step": 1, "target": "transform", "params": {"expression": "`42`", "input": {}}}]}).json()  # fmt: skip
    widget = _key(client, kind="widget", resource=wf["id"], allowed_origins=["https://a.example"])
    page = {"X-API-Key": widget["key"], "Origin": "https://a.example", "X-Team-Id": ""}
    done = client.post(
        f"/v1/workflows/{wf['id']}/execute?wait=true", headers=page, json={"executedBy": "ceo"}
    )
    assert done.status_code == 200 and set(done.json()) == {"id", "status", "result", "error"}
    assert done.json()["result"] == 42
    record = client.get(f"/v1/executions/{done.json()['id']}").json()
    assert record["executed_by"] == f"key:{widget['id']}"  # not what the body claimed


def test_client_ip_believes_only_trusted_proxies() -> None:
    from ipaddress import ip_network

    from deployments.auth import client_ip

    def scope(peer: str, *forwarded: str) -> dict[str, Any]:
        headers = [(b"x-forwarded-for", f.encode()) for f in forwarded]
        return {"client": (peer, 1234), "headers": headers}

    proxies = [ip_network("10.0.0.0/8")]
    assert client_ip(scope("203.0.113.9", "1.2.3.4"), proxies) == "203.0.113.9"  # untrusted peer
    assert client_ip(scope("10.0.0.2", "198.51.100.7"), proxies) == "198.51.100.7"
    # a client's own X-Forwarded-For line, then the proxy's: the proxy's word counts
    assert client_ip(scope("10.0.0.2", "6.6.6.6", "198.51.100.7"), proxies) == "198.51.100.7"
    assert (
        client_ip(scope("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.3"), proxies) == "198.51.100.7"
    )
    assert client_ip(scope("10.0.0.2", "6.6.6.6"), []) == "10.0.0.2"  # no proxy trusted


def test_audit_instants_need_a_time_zone(client: TestClient) -> None:
    _key(client)
    assert client.get("/v1/audit", params={"since": "2026-01-01T00:00:00"}).status_code == 400
    later = client.get("/v1/audit", params={"since": "2999-01-01T00:00:00+02:00"}).json()
    assert later["total"] == 0
    earlier = client.get("/v1/audit", params={"since": "2000-01-01T02:00:00+02:00"}).json()
    assert earlier["total"] >= 1 and earlier["items"][0]["details"] == {}


def test_a_widget_keys_spend_cap_bounds_the_llm_calls_of_its_runs(llm_settings: Settings) -> None:
    """A widget key with ``spend_cap``: the LLM calls of the runs it starts are reserved on the
    key's own budget beside the team's; over the cap the step fails with budget_exceeded naming
    spend_cap, while the team (no budget) keeps calling the same model."""
    step = {
        "step": 1, "target": "openai", "action": "generate",
        "payload": [{"role": "user", "content": "hello"}],
        "llmConfig": {"model": "gpt-4o-mini", "settings": {"max_tokens": 100}},
    }  # fmt: skip
    with TestClient(create_app(settings=llm_settings), headers={"X-Team-Id": "team-c"}) as http:
        wf = http.post("/v1/workflows", json={"name": "ask", "steps": [step]}).json()
        body = {"name": "site", "kind": "widget", "resource": wf["id"],
                "allowed_origins": ["https://a.example"]}  # fmt: skip
        assert http.post("/v1/api-keys", json={**body, "spend_cap": "lots"}).status_code == 400
        generous = http.post("/v1/api-keys", json={**body, "spend_cap": "5.00"}).json()
        tiny = http.post("/v1/api-keys", json={**body, "spend_cap": "0.00001"}).json()
        assert tiny["spend_cap"] == "0.00001" and tiny["spend_period"] == "month"
        run = f"/v1/workflows/{wf['id']}/execute?wait=true"
        page = {"Origin": "https://a.example", "X-Team-Id": ""}

        refused = http.post(run, headers={**page, "X-API-Key": tiny["key"]}).json()
        assert refused["status"] == "FAILED", refused
        assert refused["error"]["code"] == "budget_exceeded", refused["error"]
        assert "spend cap" in refused["error"]["message"]
        fine = http.post(run, headers={**page, "X-API-Key": generous["key"]}).json()
        assert fine["status"] == "COMPLETED", fine
        assert http.post(run).json()["status"] == "COMPLETED"  # the team's own run: no cap
        api = http.post("/v1/api-keys", json={"name": "x", "spend_cap": "1"})
        assert api.status_code == 400 and api.json()["error"]["field"] == "kind"


def test_an_api_keys_own_limit(settings: Settings) -> None:
    tuned = settings.model_copy(update={"rate_limits": RateLimitSettings(api_key="3/minute")})
    with TestClient(create_app(settings=tuned), headers={"X-Team-Id": "team-l"}) as http:
        key = {"X-API-Key": http.post("/v1/api-keys", json={"name": "k"}).json()["key"]}
        answers = [http.get("/v1/workflows", headers=key) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert int(answers[-1].headers["Retry-After"]) >= 1
        assert answers[-1].headers["X-RateLimit-Limit"] == "3"
        assert http.get("/v1/workflows").status_code == 200  # the team without the key


def test_query_bounds_are_utc_instants_or_dates() -> None:
    """``since``/``until`` of the audit log and ``from``/``to`` of usage: one rule."""
    from linqra.clock import query_instant
    from linqra.errors import ValidationError

    assert query_instant("2026-11-24T08:00:00+02:00", "from") == "2026-11-24T06:00:00.000000Z"
    assert query_instant("2026-11-24", "from") == "2026-11-24"
    assert query_instant(None, "from") is None
    for bad in ("2026-11-24T08:00:00", "yesterday"):
        with pytest.raises(ValidationError) as caught:
            query_instant(bad, "to")
        assert caught.value.field == "to"
