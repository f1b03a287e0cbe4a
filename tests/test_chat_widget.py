"""Chat from a public web page with a widget key (``lq_pub_…``), in process: only from the key's
origins, only with its one assistant, each visitor only in its own conversations (the
``X-Conversation-Token`` its first answer gave), limited per key and client IP, CORS for the
page; every other chat route is closed to the key."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from deployments.app import create_app
from linqra.config import RateLimitSettings, Settings

SHOP = "https://shop.example"
BLOG = "https://blog.example"
PUBLIC = {"name": "shop help", "accessControl": {"type": "PUBLIC"}}


def widget_for(client: TestClient, assistant: str) -> dict[str, str]:
    issued = client.post(
        "/v1/api-keys",
        json={"name": "site", "kind": "widget", "resource": assistant, "allowed_origins": [SHOP]},
    )
    assert issued.status_code == 201, issued.text
    # a page sends no team: the key names it
    return {"X-API-Key": issued.json()["key"], "Origin": SHOP, "X-Team-Id": ""}


def test_a_visitor_chats_with_the_keys_assistant_only_in_its_own_conversations(
    client: TestClient,
) -> None:
    bound = client.post("/v1/assistants", json=PUBLIC).json()["id"]
    other = client.post("/v1/assistants", json={"name": "internal"}).json()["id"]
    page = widget_for(client, bound)
    chat = f"/v1/assistants/{bound}/chat"

    first = client.post(chat, json={"message": "do you ship abroad?"}, headers=page)
    assert first.status_code == 200, first.text
    token = first.headers["X-Conversation-Token"]
    assert first.json()["conversation_token"] == token and first.json()["status"] == "completed"
    assert first.headers["Access-Control-Allow-Origin"] == SHOP
    assert "X-Conversation-Token" in first.headers["Access-Control-Expose-Headers"]
    conversation = first.json()["conversation_id"]

    # the same visitor continues; without its token, or with another visitor's, it is not found
    again = {"message": "and to Norway?", "conversationId": conversation}
    ok = client.post(chat, json=again, headers={**page, "X-Conversation-Token": token})
    assert ok.status_code == 200 and "Norway" in ok.json()["content"]
    assert client.post(chat, json=again, headers=page).status_code == 404
    someone = client.post(chat, json={"message": "hi"}, headers=page).headers
    stolen = client.post(
        chat, json=again, headers={**page, "X-Conversation-Token": someone["X-Conversation-Token"]}
    )
    assert stolen.status_code == 404

    # another assistant of the team is not found for the key; no origin, or another, is 403
    assert (
        client.post(f"/v1/assistants/{other}/chat", json={"message": "x"}, headers=page).status_code
        == 404
    )
    no_origin = {k: v for k, v in page.items() if k != "Origin"}
    assert client.post(chat, json={"message": "x"}, headers=no_origin).status_code == 403
    evil = client.post(
        chat, json={"message": "x"}, headers={**page, "Origin": "https://evil.example"}
    )
    assert evil.status_code == 403

    # the team's own routes stay closed to it
    for method, path in (
        ("GET", "/v1/conversations"),
        ("GET", f"/v1/conversations/{conversation}"),
        ("GET", f"/v1/conversations/{conversation}/messages"),
        ("POST", f"/v1/conversations/{conversation}/messages"),
        ("GET", f"/v1/assistants/{bound}"),
    ):
        answer = client.request(method, path, headers=page, json={"message": "x"})
        assert answer.status_code == 403, (path, answer.text)
    # the team sees the visitor's conversation, recorded as the key's
    messages = client.get(f"/v1/conversations/{conversation}/messages").json()["items"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        "do you ship abroad?",
        "and to Norway?",
    ]


def test_a_visitor_streams_follows_and_cancels_its_run(client: TestClient) -> None:
    bound = client.post("/v1/assistants", json=PUBLIC).json()["id"]
    page = widget_for(client, bound)
    body = {"message": "stream please", "stream": True}
    with client.stream("POST", f"/v1/assistants/{bound}/chat", json=body, headers=page) as answer:
        assert answer.status_code == 200
        token = answer.headers["X-Conversation-Token"]
        lines = [line for line in answer.iter_lines() if line.startswith("data:")]
    created = json.loads(lines[0].removeprefix("data:"))
    conversation, run = created["conversation_id"], created["run_id"]
    follow = f"/v1/conversations/{conversation}/runs/{run}/stream"
    mine = {**page, "X-Conversation-Token": token}
    with client.stream("GET", follow, headers=mine) as again:
        assert again.status_code == 200
        replay = [line for line in again.iter_lines() if line.startswith("event:")]
    assert replay[0] == "event: run.created" and replay[-1] == "event: run.completed"
    assert client.get(follow, headers=page).status_code == 404  # no token
    cancel = f"/v1/conversations/{conversation}/runs/{run}/cancel"
    assert client.post(cancel, headers=page).status_code == 404
    done = client.post(cancel, headers=mine)
    assert done.status_code == 200 and done.json()["status"] == "completed"  # it had finished


def test_a_visitor_is_limited_per_key_and_address(settings: Settings) -> None:
    limited = settings.model_copy(
        update={"rate_limits": RateLimitSettings(widget="2/minute", team="100/minute")}
    )
    with TestClient(create_app(settings=limited), headers={"X-Team-Id": "team-a"}) as http:
        bound = http.post("/v1/assistants", json=PUBLIC).json()["id"]
        page = widget_for(http, bound)
        answers: list[Any] = [
            http.post(f"/v1/assistants/{bound}/chat", json={"message": "hi"}, headers=page)
            for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1


def test_only_a_public_assistant_answers_a_widget_and_only_on_its_domains(
    client: TestClient,
) -> None:
    private = client.post("/v1/assistants", json={"name": "internal"}).json()["id"]
    page = widget_for(client, private)
    refused = client.post(f"/v1/assistants/{private}/chat", json={"message": "x"}, headers=page)
    assert refused.status_code == 403
    assert refused.json()["error"]["field"] == "accessControl.type"
    assert client.get("/v1/widget", headers=page).status_code == 403

    other_site = {**PUBLIC, "accessControl": {"type": "PUBLIC", "allowedDomains": [BLOG]}}
    elsewhere = client.post("/v1/assistants", json=other_site).json()["id"]
    page = widget_for(client, elsewhere)  # the key allows SHOP, the assistant only BLOG
    refused = client.post(f"/v1/assistants/{elsewhere}/chat", json={"message": "x"}, headers=page)
    assert refused.status_code == 403
    assert refused.json()["error"]["field"] == "accessControl.allowedDomains"

    listed = {**PUBLIC, "accessControl": {"type": "PUBLIC", "allowedDomains": [BLOG, SHOP]}}
    here = client.post("/v1/assistants", json=listed).json()["id"]
    page = widget_for(client, here)
    answered = client.post(f"/v1/assistants/{here}/chat", json={"message": "x"}, headers=page)
    assert answered.status_code == 200, answered.text
    assert client.get("/v1/widget", headers=page).json()["assistantId"] == here


def test_the_widget_learns_its_assistant_and_looks_from_the_key(client: TestClient) -> None:
    look = {"title": "Shop help", "welcomeMessage": "Ask about orders", "primaryColor": "#aa3300"}
    bound = client.post("/v1/assistants", json={**PUBLIC, "widgetConfig": look}).json()["id"]
    page = widget_for(client, bound)
    info = client.get("/v1/widget", headers=page)
    assert info.status_code == 200, info.text
    assert info.headers["Access-Control-Allow-Origin"] == SHOP
    body = info.json()
    assert (body["assistantId"], body["name"]) == (bound, "shop help")
    assert body["widgetConfig"] == {
        **look,
        "placeholder": "Type your question…",
        "textColor": "#ffffff",
        "position": "right",
    }
    # a team caller has no widget; a bad colour is a 400 naming the field
    assert client.get("/v1/widget").status_code == 403
    bad = client.post("/v1/assistants", json={**PUBLIC, "widgetConfig": {"primaryColor": "red"}})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "widgetConfig.primaryColor"
