"""Signing in with OIDC access tokens from a real OpenID provider (node-oidc-provider, the
session fixture ``oidc_provider``): teams from the token and from stored memberships, roles on
every route, another team's ids, platform admins, API keys beside tokens, and the audit log."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deployments.app import create_app
from linqra.config import AuthSettings, Settings

STEPS = [{"step": 1, "target": "noop"}]


@pytest.fixture
def oidc_client(settings: Settings, oidc_provider: Any) -> Iterator[TestClient]:
    """The API in OIDC mode, trusting the session's provider; no default headers."""
    tuned = settings.model_copy(
        update={"auth": AuthSettings(mode="oidc", oidc=oidc_provider.settings())}
    )
    with TestClient(create_app(settings=tuned)) as http:
        yield http


def bearer(provider: Any, who: str, team: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {provider.token(who)}"}
    if team is not None:
        headers["X-Team-Id"] = team
    return headers


def test_a_member_acts_for_their_one_team(oidc_client: TestClient, oidc_provider: Any) -> None:
    alice = bearer(oidc_provider, "alice")
    me = oidc_client.get("/v1/me", headers=alice).json()
    assert me == {
        "team_id": "team-a", "role": "member", "source": "jwt", "user_id": "user-alice",
        "teams": ["team-a"], "scopes": None, "key_id": None, "platform_admin": False,
    }  # fmt: skip
    created = oidc_client.post("/v1/workflows", json={"name": "w", "steps": STEPS}, headers=alice)
    assert created.status_code == 201
    versions = oidc_client.get(f"/v1/workflows/{created.json()['id']}/versions", headers=alice)
    assert versions.json()["items"][0]["created_by"] == "user-alice"
    budget = oidc_client.put("/v1/budget", json={"amount": "5.00"}, headers=alice)
    assert budget.status_code == 403 and "admin role" in budget.json()["error"]["message"]
    keys = oidc_client.post("/v1/api-keys", json={"name": "k"}, headers=alice)
    assert keys.status_code == 403


def test_roles_per_team_and_other_teams_ids(oidc_client: TestClient, oidc_provider: Any) -> None:
    alice = bearer(oidc_provider, "alice")
    wf = oidc_client.post("/v1/workflows", json={"name": "w", "steps": STEPS}, headers=alice).json()

    bob_token = oidc_provider.token("bob")  # admin of team-b, viewer of team-c
    choose = oidc_client.get("/v1/workflows", headers={"Authorization": f"Bearer {bob_token}"})
    assert choose.status_code == 400 and choose.json()["error"]["field"] == "X-Team-Id"
    as_viewer = {"Authorization": f"Bearer {bob_token}", "X-Team-Id": "team-c"}
    assert oidc_client.get("/v1/workflows", headers=as_viewer).status_code == 200
    write = oidc_client.post("/v1/workflows", json={"name": "x", "steps": STEPS}, headers=as_viewer)
    assert write.status_code == 403 and "member role" in write.json()["error"]["message"]
    foreign = {"Authorization": f"Bearer {bob_token}", "X-Team-Id": "team-a"}
    assert oidc_client.get("/v1/workflows", headers=foreign).status_code == 403
    as_admin = {"Authorization": f"Bearer {bob_token}", "X-Team-Id": "team-b"}
    # team-a's workflow does not exist for team-b, and team-b's list does not show it
    assert oidc_client.get(f"/v1/workflows/{wf['id']}", headers=as_admin).status_code == 404
    assert oidc_client.get("/v1/workflows", headers=as_admin).json()["total"] == 0
    assert (
        oidc_client.put("/v1/budget", json={"amount": "5.00"}, headers=as_admin).status_code == 200
    )
    # a trailing space is a different (invalid) team, never team-b
    spaced = oidc_client.get("/v1/workflows", headers={**as_admin, "X-Team-Id": "team-b\t"})
    assert spaced.status_code == 400 and spaced.json()["error"]["field"] == "X-Team-Id"


def test_no_or_bad_credentials(oidc_client: TestClient, oidc_provider: Any) -> None:
    for headers in ({}, {"X-Team-Id": "team-a"}, {"Authorization": "Bearer not.a.jwt"}):
        answer = oidc_client.get("/v1/workflows", headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    other = oidc_provider.token("alice", audience="other-api")
    wrong_aud = oidc_client.get("/v1/workflows", headers={"Authorization": f"Bearer {other}"})
    assert wrong_aud.status_code == 401 and "invalid_token" in wrong_aud.headers["WWW-Authenticate"]
    nobody = oidc_client.get("/v1/me", headers=bearer(oidc_provider, "nobody"))
    assert nobody.status_code == 403 and "any team" in nobody.json()["error"]["message"]
    assert oidc_client.get("/healthz").status_code == 200  # public


def test_platform_admin_and_stored_memberships(
    oidc_client: TestClient, oidc_provider: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    root = bearer(oidc_provider, "root")
    assert oidc_client.get("/v1/workflows", headers=root).status_code == 403  # in no team
    root_a = bearer(oidc_provider, "root", "team-a")
    assert oidc_client.get("/v1/me", headers=root_a).json()["role"] == "admin"

    # a team made by the platform admin, with its first admin; then that admin adds a viewer
    made = oidc_client.post(
        "/v1/teams", json={"id": "team-d", "name": "D", "admin": "user-nobody"}, headers=root_a
    )
    assert made.status_code == 201, made.text
    again = oidc_client.post("/v1/teams", json={"id": "team-d", "admin": "x"}, headers=root_a)
    assert again.status_code == 409
    not_root = oidc_client.post(
        "/v1/teams",
        json={"id": "team-e", "admin": "x"},
        headers=bearer(oidc_provider, "bob", "team-b"),
    )
    assert not_root.status_code == 403
    nobody = bearer(oidc_provider, "nobody")
    assert oidc_client.get("/v1/me", headers=nobody).json()["role"] == "admin"
    added = oidc_client.put("/v1/members/user-alice", json={"role": "viewer"}, headers=nobody)
    assert added.status_code == 200
    alice_d = bearer(oidc_provider, "alice", "team-d")
    assert oidc_client.get("/v1/me", headers=alice_d).json()["role"] == "viewer"

    # a suspended membership denies the team whatever the token's groups say
    carol_a = bearer(oidc_provider, "carol", "team-a")
    assert oidc_client.get("/v1/workflows", headers=carol_a).status_code == 200
    suspend = {"role": "member", "status": "suspended"}
    assert (
        oidc_client.put("/v1/members/user-carol", json=suspend, headers=root_a).status_code == 200
    )
    assert oidc_client.get("/v1/workflows", headers=carol_a).status_code == 403
    carol = oidc_client.get("/v1/me", headers=bearer(oidc_provider, "carol")).json()
    assert carol["team_id"] == "team-b" and carol["teams"] == ["team-b"]

    events = oidc_client.get("/v1/audit", params={"limit": 100}, headers=root_a).json()["items"]
    cross = [e for e in events if e["action"] == "platform_admin.access"]
    assert cross and all(e["actor"] == "user-root" and e["details"]["cross_team"] for e in cross)
    assert any(e["action"] == "member.set" and e["outcome"] == "success" for e in events)
    # carol's refusal is not written into team-a's log (nobody may flood a team's log) but
    # into the platform's, naming the team she asked for
    denied = oidc_client.get("/v1/audit", params={"outcome": "denied"}, headers=root_a).json()
    assert not any(e["actor"] == "user-carol" for e in denied["items"])
    scope = {"scope": "platform", "limit": 100}
    platform = oidc_client.get("/v1/audit", params=scope, headers=root_a).json()["items"]
    assert any(
        e["actor"] == "user-carol" and e["status"] == 403 and e["details"]["team"] == "team-a"
        for e in platform
    )
    assert oidc_client.get("/v1/audit", params=scope, headers=nobody).status_code == 403
    text = str(events) + caplog.text
    for headers in (root_a, carol_a, nobody, alice_d):
        assert headers["Authorization"].removeprefix("Bearer ") not in text


def test_api_keys_beside_tokens(oidc_client: TestClient, oidc_provider: Any) -> None:
    bob_b = bearer(oidc_provider, "bob", "team-b")
    issued = oidc_client.post(
        "/v1/api-keys", json={"name": "ci", "scopes": ["read", "write"]}, headers=bob_b
    ).json()
    key = {"X-API-Key": issued["key"]}
    assert issued["created_by"] == "user-bob"
    made = oidc_client.post("/v1/workflows", json={"name": "k", "steps": STEPS}, headers=key)
    assert made.status_code == 201
    assert oidc_client.get("/v1/me", headers=key).json()["team_id"] == "team-b"
    assert oidc_client.get("/v1/api-keys", headers=key).status_code == 403
    both = {**key, "Authorization": bob_b["Authorization"]}
    assert oidc_client.get("/v1/workflows", headers=both).status_code == 400


def test_a_demoted_or_removed_members_keys_stop_working(
    oidc_client: TestClient, oidc_provider: Any
) -> None:
    """Keys never exceed what their creator now is: a demotion revokes the keys above the new
    role, a removal all of them."""
    root_a = bearer(oidc_provider, "root", "team-a")
    team = f"team-k{time.monotonic_ns() % 10**9}"
    made = oidc_client.post("/v1/teams", json={"id": team, "admin": "user-nobody"}, headers=root_a)
    assert made.status_code == 201
    nobody = bearer(oidc_provider, "nobody")
    assert (
        oidc_client.put(
            "/v1/members/user-alice", json={"role": "admin"}, headers=nobody
        ).status_code
        == 200
    )
    admin_key = oidc_client.post(
        "/v1/api-keys", json={"name": "a", "scopes": ["admin", "read"]}, headers=nobody
    ).json()
    reader = oidc_client.post(
        "/v1/api-keys", json={"name": "r", "role": "viewer"}, headers=nobody
    ).json()
    alice = bearer(oidc_provider, "alice", team)
    assert (
        oidc_client.put(
            "/v1/members/user-nobody", json={"role": "member"}, headers=alice
        ).status_code
        == 200
    )
    assert oidc_client.get("/v1/me", headers={"X-API-Key": admin_key["key"]}).status_code == 401
    assert oidc_client.get("/v1/me", headers={"X-API-Key": reader["key"]}).status_code == 200
    assert oidc_client.delete("/v1/members/user-nobody", headers=alice).status_code == 204
    assert oidc_client.get("/v1/me", headers={"X-API-Key": reader["key"]}).status_code == 401
    keys = oidc_client.get("/v1/api-keys", headers=alice).json()["items"]
    assert {k["revoked_because"] for k in keys} == {"its creator's role changed"}
