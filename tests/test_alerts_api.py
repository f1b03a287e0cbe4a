"""The alerts API (``/v1/alerts/…``) through the app in process: rules written by admins and read by
viewers, a 400 naming the field for each kind of bad rule, another team's ids 404, history,
deliveries and firing alerts after evaluator ticks, dry runs, and the named signing secrets."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from linqra.alerts import AlertEvaluator
from linqra.clock import new_id, utcnow
from linqra.config import Settings
from linqra.system import System

OTHER = {"X-Team-Id": "team-b"}
SECRET = "whsec-b81d2e4f6a8c0e1f"
RULE = {
    "name": "backlog", "signal": "queue_backlog", "params": {"queue": "executions"},
    "comparison": ">=", "threshold": 1, "window": "5m", "for": "30s", "severity": "critical",
    "channels": [{"type": "event", "topic": "ops"}],
}  # fmt: skip


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


def _system(client: TestClient) -> System:
    system: System = client.app.state.system  # type: ignore[attr-defined]
    return system


def _tick(client: TestClient, evaluator: AlertEvaluator, seconds: float = 0) -> Any:
    now = utcnow() + timedelta(seconds=seconds)
    return client.portal.call(evaluator.tick, now)  # type: ignore[union-attr]


def test_an_admin_keeps_rules_a_viewer_reads_them_and_ticks_fill_history(
    client: TestClient,
) -> None:
    put = client.put("/v1/alerts/secrets/ops-hook", json={"value": SECRET})
    assert put.status_code == 200, put.text
    assert put.json()["last4"] == SECRET[-4:] and SECRET not in put.text
    signals = client.get("/v1/alerts/signals").json()["items"]
    assert {s["name"] for s in signals} == {
        "execution_failure_rate", "team_spend", "provider_error_rate", "queue_backlog",
        "schedules_missed",
    }  # fmt: skip

    created = client.post("/v1/alerts/rules", json=RULE)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert (rule["window"], rule["window_seconds"], rule["for"], rule["for_seconds"]) == (
        "5m", 300, "30s", 30)  # fmt: skip
    assert rule["version"] == 1 and "state" not in rule
    assert client.post("/v1/alerts/rules", json=RULE).status_code == 409  # one name per team
    for i in range(2):
        assert client.post("/v1/alerts/rules", json={**RULE, "name": f"r{i}"}).status_code == 201
    first = client.get("/v1/alerts/rules", params={"limit": 2}).json()
    assert (first["total"], len(first["items"]), first["next_offset"]) == (3, 2, 2)
    assert client.get("/v1/alerts/rules", params={"offset": 2}).json()["items"][0]["id"] == (
        rule["id"])  # fmt: skip

    stale = client.put(f"/v1/alerts/rules/{rule['id']}", json=RULE, headers={"If-Match": "7"})
    assert stale.status_code == 409 and stale.json()["error"]["field"] == "If-Match"
    hooked = {
        **RULE,
        "channels": [
            *RULE["channels"],
            {"type": "webhook", "url": "http://127.0.0.1:9/nobody", "secret": "ops-hook"},
        ],
    }
    updated = client.put(f"/v1/alerts/rules/{rule['id']}", json=hooked, headers={"If-Match": "1"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2 and len(updated.json()["channels"]) == 2

    dry = client.post(f"/v1/alerts/rules/{rule['id']}/evaluate")
    assert dry.status_code == 200, dry.text
    assert dry.json() | {"window_from": None} == dry.json() | {
        "value": 0, "breach": False, "state": "inactive", "next_state": "inactive",
        "window_from": None}  # fmt: skip

    system = _system(client)
    client.portal.call(  # type: ignore[union-attr]
        system.workflows.executions.create, "team-a", {"id": new_id("ex"), "workflow_id": "w"}
    )
    assert client.post(f"/v1/alerts/rules/{rule['id']}/evaluate").json()["next_state"] == (
        "pending")  # fmt: skip
    evaluator = AlertEvaluator.of(system)
    try:
        _tick(client, evaluator)
        state = client.get(f"/v1/alerts/rules/{rule['id']}").json()["state"]
        assert (state["state"], state["last_value"]) == ("pending", 1)
        _tick(client, evaluator, 31)
    finally:
        client.portal.call(evaluator.close)  # type: ignore[union-attr]
    now_firing = {f["rule_id"]: f for f in client.get("/v1/alerts/firing").json()["items"]}
    assert len(now_firing) == 3  # r0 and r1 watch the same backlog
    firing = now_firing[rule["id"]]
    assert (firing["rule_id"], firing["severity"], firing["value"]) == (rule["id"], "critical", 1)
    history = client.get(f"/v1/alerts/rules/{rule['id']}/history").json()
    assert history["total"] == 1 and history["items"][0]["kind"] == "firing"
    deliveries = client.get(f"/v1/alerts/rules/{rule['id']}/deliveries").json()["items"]
    outcome = {d["type"]: (d["status"], d["attempts"]) for d in deliveries}
    assert outcome == {"event": ("delivered", 1), "webhook": ("retrying", 1)}  # nobody on :9
    failed = client.get(
        f"/v1/alerts/rules/{rule['id']}/deliveries", params={"status": "retrying"}
    ).json()["items"]
    assert [d["target"] for d in failed] == ["http://127.0.0.1:9/nobody"]
    assert failed[0]["last_error"] and SECRET not in json.dumps(failed)

    # a viewer reads, never writes
    key = client.post("/v1/api-keys", json={"name": "v", "role": "viewer", "scopes": ["read"]})
    viewer = {"X-API-Key": key.json()["key"]}
    assert client.get("/v1/alerts/rules", headers=viewer).status_code == 200
    assert client.get("/v1/alerts/firing", headers=viewer).status_code == 200
    assert client.post("/v1/alerts/rules", json=RULE, headers=viewer).status_code == 403
    assert client.delete(f"/v1/alerts/rules/{rule['id']}", headers=viewer).status_code == 403
    assert client.get("/v1/alerts/secrets", headers=viewer).status_code == 403

    # a secret a rule signs with stays; then the rule goes, then the secret
    in_use = client.delete("/v1/alerts/secrets/ops-hook")
    assert in_use.status_code == 409 and rule["id"] in in_use.json()["error"]["message"]
    assert client.delete(f"/v1/alerts/rules/{rule['id']}").status_code == 204
    assert client.get(f"/v1/alerts/rules/{rule['id']}").status_code == 404
    assert client.delete("/v1/alerts/secrets/ops-hook").status_code == 204
    assert client.get("/v1/alerts/secrets").json()["items"] == []
    assert client.delete("/v1/alerts/secrets/ops-hook").status_code == 404


def test_another_teams_rule_is_not_found(client: TestClient) -> None:
    rule = client.post("/v1/alerts/rules", json=RULE).json()
    for method, path in [
        ("GET", ""), ("PUT", ""), ("DELETE", ""), ("GET", "/history"), ("GET", "/deliveries"),
        ("POST", "/evaluate"),
    ]:  # fmt: skip
        body = RULE if method == "PUT" else None
        answer = client.request(
            method, f"/v1/alerts/rules/{rule['id']}{path}", json=body, headers=OTHER
        )
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["field"] == "rule_id"
    assert client.get("/v1/alerts/rules", headers=OTHER).json()["total"] == 0
    assert client.get(f"/v1/alerts/rules/{rule['id']}").status_code == 200


def _hook(**channel: Any) -> dict[str, Any]:
    return {**RULE, "channels": [{"type": "webhook", "secret": "ops-hook", **channel}]}


BAD = [
    ({**RULE, "signal": "cpu_load"}, "signal", "unknown signal"),
    ({**RULE, "params": {"queue": "executions", "colour": "red"}}, "params.colour", "no parameter"),
    ({**RULE, "params": {"queue": "kafka"}}, "params.queue", "one of"),
    ({**RULE, "signal": "execution_failure_rate", "params": {"workflow_id": "wf_nope"},
      "threshold": 0.1}, "params.workflow_id", "no workflow"),
    ({**RULE, "signal": "execution_failure_rate", "params": {}, "threshold": 1.5},
     "threshold", "0 to 1"),
    ({**RULE, "signal": "team_spend", "params": {}, "threshold": -5}, "threshold", ">= 0"),
    ({**RULE, "threshold": "high"}, "threshold", "number"),
    ({**RULE, "threshold": True}, "threshold", "number"),
    ({**RULE, "window": "5 minutes"}, "window", "duration"),
    ({**RULE, "window": "1s"}, "window", "10s to 31d"),
    ({**RULE, "window": "90d"}, "window", "10s to 31d"),
    ({**RULE, "for": "-1m"}, "for", "duration"),
    ({**RULE, "keep_firing_for": "8d"}, "keep_firing_for", "0s to 7d"),
    ({**RULE, "comparison": "=="}, "comparison", ""),
    ({**RULE, "severity": "urgent"}, "severity", ""),
    ({**RULE, "labels": {"team": "x"}}, "labels.team", "set by Linqra"),
    ({**RULE, "labels": {"2x": "y"}}, "labels.2x", "label name"),
    ({**RULE, "channels": [{"type": "sms"}]}, "channels[0].type", ""),
    ({**RULE, "channels": [{"type": "alertmanager"}]}, "channels[0].type", "no Alertmanager"),
    ({**RULE, "channels": [{"type": "event", "topic": "bad topic!"}]}, "channels[0].topic", ""),
    ({**RULE, "channels": [{"type": "event", "topic": "t", "url": "http://x"}]},
     "channels[0].url", "takes no url"),
    (_hook(url="ftp://example.com/x"), "channels[0].url", "http(s)"),
    (_hook(), "channels[0].url", "http(s)"),
    (_hook(url="https://user:pw@example.com/x"), "channels[0].url", "credentials"),
    (_hook(url="https://example.com/x", secret="nope"), "channels[0].secret", "no alert secret"),
    (_hook(url="https://example.com/x", secret="Bad Name"), "channels[0].secret", "secret name"),
    ({**RULE, "bogus": 1}, "bogus", ""),
    ({k: v for k, v in RULE.items() if k != "name"}, "name", ""),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field", "says"), BAD, ids=[f"{b[1]}-{i}" for i, b in
                                                              enumerate(BAD)])  # fmt: skip
def test_a_bad_rule_is_a_400_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str, says: str
) -> None:
    client.put("/v1/alerts/secrets/ops-hook", json={"value": SECRET})
    for answer in (
        client.post("/v1/alerts/rules", json=body),
        client.put(f"/v1/alerts/rules/{_rule_id(client)}", json=body),
    ):
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["field"] == field and says in error["message"], error


def _rule_id(client: TestClient) -> str:
    found = client.get("/v1/alerts/rules").json()["items"]
    if found:
        return str(found[0]["id"])
    return str(client.post("/v1/alerts/rules", json={**RULE, "name": "ok"}).json()["id"])
