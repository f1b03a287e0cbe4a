"""Assistants over HTTP, in process: versioned CRUD like workflows, team scoping, who may write,
every bad field named, and which assistants may chat (``AssistantService.chat_ready``)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from linqra.errors import Conflict
from linqra.system import System
from tests.support.http import TeamClient

TASK = {"name": "sum", "type": "DATA_PROCESSING", "config": {"expression": "sum(values)"}}


def make_task(api: TestClient | TeamClient) -> str:
    agent = api.post("/v1/agents", json={"name": "helpers"})
    assert agent.status_code == 201, agent.text
    task = api.post(f"/v1/agents/{agent.json()['id']}/tasks", json=TASK)
    assert task.status_code == 201, task.text
    return str(task.json()["id"])


def make_assistant(api: TestClient | TeamClient, **body: Any) -> dict[str, Any]:
    answer = api.post("/v1/assistants", json={"name": "helper", **body})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_round_trip_with_versions_rollback_and_if_match(client: TestClient) -> None:
    task = make_task(client)
    notes = client.post("/v1/knowledge/collections", json={"name": "notes"})
    assert notes.status_code == 201, notes.text
    body = {
        "name": "support",
        "description": "answers customers",
        "defaultModel": {
            "provider": "local",
            "modelName": "echo",
            "settings": {"temperature": 0.2, "max_tokens": 300},
        },
        "systemPrompt": "You are helpful.",
        "selectedTasks": [{"taskId": task, "timeoutSeconds": 30}],
        "knowledge": {"collections": ["notes"], "topK": 3},  # by name: stored by id
        "accessControl": {"type": "PUBLIC", "allowedDomains": ["https://Shop.example"]},
        "guardrails": {"input": {"redactPii": ["email"]}},
        "doubleTexting": "reject",
    }
    created = make_assistant(client, **body)
    assert created["id"].startswith("as_") and created["version"] == 1
    assert created["status"] == "ACTIVE" and created["onDisconnect"] == "continue"
    assert created["knowledge"] == {"collections": [notes.json()["id"]], "topK": 3}
    assert created["accessControl"]["allowedDomains"] == ["https://shop.example"]
    assert created["contextManagement"] == {
        "strategy": "sliding_window",
        "maxRecentMessages": 20,
        "maxTotalTokens": 4000,
    }
    assert created["defaultModel"]["settings"] == {"temperature": 0.2, "max_tokens": 300}
    url = f"/v1/assistants/{created['id']}"
    assert client.get(url).json() == created

    draft = {**body, "name": "support v2", "status": "DRAFT", "selectedTasks": []}
    updated = client.put(url, json=draft, headers={"If-Match": "1"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2 and updated.json()["status"] == "DRAFT"
    stale = client.put(url, json=body, headers={"If-Match": "1"})
    assert stale.status_code == 409 and stale.json()["error"]["field"] == "If-Match"
    assert client.put(url, json=body, headers={"If-Match": "v2"}).status_code == 400

    versions = client.get(f"{url}/versions").json()
    assert versions["total"] == 2 and [v["version"] for v in versions["items"]] == [2, 1]
    first = client.get(f"{url}/versions/1").json()
    assert first["assistant_id"] == created["id"] and first["name"] == "support"
    assert first["selectedTasks"] == [{"taskId": task, "timeoutSeconds": 30.0}]
    assert client.get(f"{url}/versions/9").status_code == 404

    rolled = client.post(f"{url}/versions/1/rollback")
    assert rolled.status_code == 201, rolled.text
    assert rolled.json()["version"] == 3 and rolled.json()["name"] == "support"
    assert client.get(f"{url}/versions/3").json()["rolled_back_from"] == 1
    assert client.get(url).json()["status"] == "ACTIVE"

    other = make_assistant(client, name="drafty", status="DRAFT")
    listed = client.get("/v1/assistants").json()
    assert [a["id"] for a in listed["items"]] == [other["id"], created["id"]]  # newest first
    drafts = client.get("/v1/assistants", params={"status": "DRAFT"}).json()
    assert drafts["total"] == 1 and drafts["items"][0]["id"] == other["id"]
    assert client.get("/v1/assistants", params={"limit": 1}).json()["next_offset"] == 1

    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert client.get("/v1/assistants").json()["total"] == 1


def test_another_teams_assistant_is_not_found_on_every_route(client: TestClient) -> None:
    mine = make_assistant(client)
    url = f"/v1/assistants/{mine['id']}"
    other = TeamClient(client, "team-b")
    for method, path, body in (
        ("GET", url, None),
        ("PUT", url, {"name": "mine now"}),
        ("DELETE", url, None),
        ("GET", f"{url}/versions", None),
        ("GET", f"{url}/versions/1", None),
        ("POST", f"{url}/versions/1/rollback", None),
    ):
        answer = other.request(method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
    assert other.get("/v1/assistants").json()["total"] == 0
    assert client.get(url).json() == mine  # untouched


def test_a_viewer_reads_and_may_not_write(client: TestClient) -> None:
    made = make_assistant(client)
    url = f"/v1/assistants/{made['id']}"
    key = client.post(
        "/v1/api-keys", json={"name": "v", "role": "viewer", "scopes": ["read", "write"]}
    )
    viewer = {"X-API-Key": key.json()["key"]}
    for path in ("/v1/assistants", url, f"{url}/versions", f"{url}/versions/1"):
        assert client.get(path, headers=viewer).status_code == 200, path
    for method, path, body in (
        ("POST", "/v1/assistants", {"name": "x"}),
        ("PUT", url, {"name": "x"}),
        ("DELETE", url, None),
        ("POST", f"{url}/versions/1/rollback", None),
    ):
        answer = client.request(method, path, json=body, headers=viewer)
        assert answer.status_code == 403, (method, path, answer.text)
    assert client.get(url).json() == made


BAD_FIELDS = [
    ({"status": "ARCHIVED"}, "status"),
    ({"colour": "blue"}, "colour"),
    ({"name": ""}, "name"),
    ({"description": "d" * 4001}, "description"),
    ({"systemPrompt": "p" * 20_001}, "systemPrompt"),
    ({"defaultModel": {"provider": "nowhere", "modelName": "m"}}, "defaultModel.provider"),
    ({"defaultModel": {"provider": "local"}}, "defaultModel.modelName"),
    (
        {
            "defaultModel": {
                "provider": "local",
                "modelName": "echo",
                "settings": {"temperature": 9},
            }
        },
        "defaultModel.settings.temperature",
    ),
    (  # no room left for a prompt in gpt-4o's 128,000-token window
        {
            "defaultModel": {
                "provider": "openai",
                "modelName": "gpt-4o",
                "settings": {"max_tokens": 128_000},
            }
        },
        "defaultModel.settings.max_tokens",
    ),
    ({"selectedTasks": [{"taskId": "tk_nope"}]}, "selectedTasks[0].taskId"),
    ({"selectedTasks": [{"taskId": "t", "timeoutSeconds": 0}]}, "selectedTasks[0].timeoutSeconds"),
    (
        {"selectedTasks": [{"taskId": "t", "timeoutSeconds": 601}]},
        "selectedTasks[0].timeoutSeconds",
    ),
    (
        {"selectedTasks": [{"taskId": "t", "timeoutSeconds": "60"}]},
        "selectedTasks[0].timeoutSeconds",
    ),
    ({"selectedTasks": [{"taskId": f"t{i}"} for i in range(11)]}, "selectedTasks"),
    ({"knowledge": {"collections": ["kc_nope"]}}, "knowledge.collections[0]"),
    ({"knowledge": {"collections": [], "topK": 51}}, "knowledge.topK"),
    ({"contextManagement": {"strategy": "summary"}}, "contextManagement.strategy"),
    ({"contextManagement": {"maxRecentMessages": 201}}, "contextManagement.maxRecentMessages"),
    ({"contextManagement": {"maxTotalTokens": 99}}, "contextManagement.maxTotalTokens"),
    ({"accessControl": {"type": "SHARED"}}, "accessControl.type"),
    (
        {"accessControl": {"allowedDomains": ["https://a.example/path"]}},
        "accessControl.allowedDomains[0]",
    ),
    ({"accessControl": {"allowedDomains": ["*"]}}, "accessControl.allowedDomains[0]"),
    (
        {"accessControl": {"allowedDomains": [f"https://s{i}.example" for i in range(51)]}},
        "accessControl.allowedDomains",
    ),
    ({"doubleTexting": "ignore"}, "doubleTexting"),
    ({"onDisconnect": "pause"}, "onDisconnect"),
    ({"guardrails": []}, "guardrails"),
]


@pytest.mark.parametrize(("change", "field"), BAD_FIELDS, ids=[f for _, f in BAD_FIELDS])
def test_every_bad_field_is_a_400_naming_it(
    client: TestClient, change: dict[str, Any], field: str
) -> None:
    answer = client.post("/v1/assistants", json={"name": "helper", **change})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == field
    made = make_assistant(client)  # the same refusal on an update, which writes nothing
    refused = client.put(f"/v1/assistants/{made['id']}", json={"name": "helper", **change})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == field
    assert client.get(f"/v1/assistants/{made['id']}/versions").json()["total"] == 1
    assert client.get("/v1/assistants").json()["total"] == 1


def test_references_must_be_the_teams_own_and_named_once(client: TestClient) -> None:
    foreign = make_task(TeamClient(client, "team-b"))
    answer = client.post(
        "/v1/assistants", json={"name": "h", "selectedTasks": [{"taskId": foreign}]}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "selectedTasks[0].taskId"
    task = make_task(client)
    twice = [{"taskId": task}, {"taskId": task, "timeoutSeconds": 5}]
    answer = client.post("/v1/assistants", json={"name": "h", "selectedTasks": twice})
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "selectedTasks[1].taskId"
    notes = client.post("/v1/knowledge/collections", json={"name": "notes"}).json()
    same = {"collections": [notes["id"], "notes"]}  # its id, then its name
    answer = client.post("/v1/assistants", json={"name": "h", "knowledge": same})
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "knowledge.collections[1]"
    assert client.get("/v1/assistants", params={"status": "GONE"}).status_code == 400
    assert client.post("/v1/assistants", json=["not", "an", "object"]).status_code == 400


def test_a_rollback_to_a_version_naming_a_deleted_task_is_refused(client: TestClient) -> None:
    task = make_task(client)
    made = make_assistant(client, selectedTasks=[{"taskId": task}])
    url = f"/v1/assistants/{made['id']}"
    assert client.put(url, json={"name": "no tasks"}).status_code == 200
    assert client.delete(f"/v1/tasks/{task}").status_code == 204
    answer = client.post(f"{url}/versions/1/rollback")
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "selectedTasks[0].taskId"
    assert client.get(url).json()["version"] == 2


async def test_only_an_active_assistant_is_ready_to_chat(system: System) -> None:
    service = system.assistants
    active = await service.create("team-a", {"name": "on"})
    assert (await service.chat_ready("team-a", active.id)).id == active.id
    for status in ("DRAFT", "INACTIVE"):
        made = await service.create("team-a", {"name": status.lower(), "status": status})
        with pytest.raises(Conflict) as refused:
            await service.chat_ready("team-a", made.id)
        assert refused.value.status == 409 and status in refused.value.message
        assert refused.value.field == "status"
    await service.update("team-a", active.id, {"name": "off", "status": "INACTIVE"})
    with pytest.raises(Conflict):
        await service.chat_ready("team-a", active.id)
    pinned = await service.get_version("team-a", active.id, 1)
    assert pinned.version == 1 and pinned.status == "ACTIVE" and pinned.defaultModel is None
    chosen = await service.update(
        "team-a",
        active.id,
        {"name": "on", "defaultModel": {"provider": "local", "modelName": "echo"}},
    )
    assert chosen.defaultModel is not None and chosen.defaultModel.ref() == "local:echo"
