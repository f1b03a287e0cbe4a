"""The console's assistants area in a real headless Chromium: an assistant created and edited
through the form (a refused model shown on the model field), a streamed answer completed with
its cost, a second message in the same conversation, the conversation reopened from the list,
and a slow answer stopped: the run is cancelled and the partial reply kept, marked cancelled."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.support.browser import Console
from tests.support.http import until

PRICE = {"input": "2.50", "cache_read": "1.25", "output": "10.00"}  # per million tokens


def make_assistant(console: Console, model: str, name: str = "helper") -> str:
    """An ACTIVE assistant on the OpenAI fake's ``model``; a model the catalogue does not price
    (the fake's ``slow-…``) is priced for this test's team."""
    with console.api() as http:
        if model != "gpt-4o":  # openai:gpt-4o is in the catalogue (configs/models.yaml)
            priced = http.put(f"/v1/models/openai:{model}/price", json=PRICE)
            assert priced.status_code == 200, priced.text
        made = http.post(
            "/v1/assistants",
            json={"name": name, "defaultModel": {"provider": "openai", "modelName": model}},
        )
        assert made.status_code == 201, made.text
        return str(made.json()["id"])


def stored_messages(console: Console, conversation: str) -> list[dict[str, Any]]:
    with console.api() as http:
        got = http.get(f"/v1/conversations/{conversation}/messages")
        assert got.status_code == 200, got.text
        return list(got.json()["items"])


def test_create_and_edit_an_assistant_through_the_form(console: Console) -> None:
    console.allow(r"status of 400")  # the refused model, on purpose
    page = console.open("/assistants")
    expect(page.get_by_test_id("empty-state")).to_contain_text("No assistants yet")
    page.get_by_role("link", name="New assistant").click()
    page.get_by_label("Name").fill("support")
    model = page.get_by_label("Model")
    model.fill("nowhere:gpt-4o")
    page.get_by_label("System prompt").fill("You answer briefly.")
    page.get_by_role("button", name="Create").click()

    with console.api() as http:  # what the API says about that body, shown on the model field
        refused = http.post(
            "/v1/assistants",
            json={
                "name": "support",
                "defaultModel": {"provider": "nowhere", "modelName": "gpt-4o"},
            },
        )
    error = refused.json()["error"]
    assert refused.status_code == 400 and error["field"].startswith("defaultModel")
    expect(model).to_have_attribute("aria-invalid", "true")
    described = model.get_attribute("aria-describedby") or ""
    error_id = next(i for i in described.split() if i.endswith("-error"))
    expect(page.locator(f"[id='{error_id}']")).to_have_text(error["message"])
    expect(page.get_by_label("Name")).not_to_have_attribute("aria-invalid", "true")
    assert not console.accessibility()

    model.fill("openai:gpt-4o")
    page.get_by_role("combobox", name="Status").click()
    page.get_by_role("option", name="DRAFT", exact=True).click()
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/console/assistants/as_[0-9a-f]+$"))
    assistant_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", name="support")).to_be_visible()
    expect(page.get_by_text("only an ACTIVE assistant chats")).to_be_visible()

    with console.api() as http:
        saved = http.get(f"/v1/assistants/{assistant_id}").json()
    assert saved["defaultModel"]["provider"] == "openai"
    assert saved["defaultModel"]["modelName"] == "gpt-4o"
    assert saved["systemPrompt"] == "You answer briefly." and saved["status"] == "DRAFT"
    assert saved["version"] == 1

    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.get_by_label("Name")).to_have_value("support")
    expect(page.get_by_label("Model")).to_have_value("openai:gpt-4o")
    page.get_by_label("Name").fill("support desk")
    page.get_by_role("combobox", name="Status").click()
    page.get_by_role("option", name="ACTIVE", exact=True).click()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="support desk")).to_be_visible()
    with console.api() as http:
        edited = http.get(f"/v1/assistants/{assistant_id}").json()
    assert edited["version"] == 2 and edited["status"] == "ACTIVE"
    assert edited["name"] == "support desk" and edited["systemPrompt"] == "You answer briefly."

    page.get_by_role("link", name="All assistants").click()
    row = page.get_by_role("table", name="assistants").get_by_role(
        "row", name=re.compile("support desk")
    )
    expect(row).to_contain_text("openai:gpt-4o")
    expect(row).to_contain_text("ACTIVE")

    row.get_by_role("link", name="Edit").click()
    page.get_by_role("button", name="Delete assistant").click()
    page.get_by_role("dialog", name="Delete assistant").get_by_role("button", name="Delete").click()
    page.wait_for_url(re.compile(r"/console/assistants$"))
    expect(page.get_by_test_id("empty-state")).to_contain_text("No assistants yet")
    with console.api() as http:
        assert http.get(f"/v1/assistants/{assistant_id}").status_code == 404


def test_chat_streams_an_answer_with_its_cost_and_continues_the_conversation(
    console: Console,
) -> None:
    assistant = make_assistant(console, "gpt-4o")
    page = console.open(f"/assistants/{assistant}")
    box = page.get_by_label("Message")
    box.fill("where is my parcel")
    page.get_by_role("button", name="Send").click()

    replies = page.get_by_test_id("assistant-message")
    first = replies.nth(0)
    expect(first).to_have_attribute("data-status", "completed")
    expect(first.get_by_test_id("reply-text")).to_have_text("Echo: where is my parcel")
    page.wait_for_url(re.compile(r"\?c=conv_"))
    conversation = page.url.split("?c=", 1)[1]
    stored = stored_messages(console, conversation)
    assert [(m["role"], m["status"]) for m in stored] == [
        ("user", "completed"),
        ("assistant", "completed"),
    ]
    answer = stored[1]
    assert answer["cost"] and float(answer["cost"]) > 0 and answer["currency"] == "USD"
    expect(first.get_by_test_id("reply-cost")).to_have_text(f"cost {answer['cost']} USD")
    usage = answer["usage"]
    expect(first.get_by_test_id("reply-usage")).to_contain_text(
        f"{usage['input_tokens']} in · {usage['output_tokens']} out"
    )
    expect(first.get_by_test_id("reply-usage")).to_contain_text("openai:gpt-4o")

    box.fill("and when does it arrive")
    box.press("Enter")
    second = replies.nth(1)
    expect(second).to_have_attribute("data-status", "completed")
    expect(second.get_by_test_id("reply-text")).to_have_text("Echo: and when does it arrive")
    stored = stored_messages(console, conversation)
    assert [m["content"] for m in stored if m["role"] == "assistant"] == [
        "Echo: where is my parcel",
        "Echo: and when does it arrive",
    ]
    expect(second.get_by_test_id("reply-cost")).to_have_text(f"cost {stored[3]['cost']} USD")
    with console.api() as http:
        listed = http.get("/v1/conversations", params={"assistant_id": assistant}).json()
    assert [c["id"] for c in listed["items"]] == [conversation]

    # a new conversation empties the page; the list reopens the first one, from the server
    page.get_by_role("button", name="New").click()
    expect(replies).to_have_count(0)
    conversations = page.get_by_role("region", name="conversations")
    conversations.get_by_text("4 messages").click()
    expect(replies).to_have_count(2)
    expect(replies.nth(1).get_by_test_id("reply-text")).to_have_text(
        "Echo: and when does it arrive"
    )
    expect(replies.nth(0).get_by_test_id("reply-cost")).to_have_text(
        f"cost {stored[1]['cost']} USD"
    )
    expect(page.get_by_test_id("user-message")).to_have_text(
        ["where is my parcel", "and when does it arrive"]
    )


def test_stop_cancels_a_slow_answer_and_keeps_the_partial_text(console: Console) -> None:
    """Also across a reload mid-answer: the page follows the running reply again and stops it."""
    assistant = make_assistant(console, "slow-40-400")  # 400 words, one every 40 ms: 16 s
    page = console.open(f"/assistants/{assistant}")
    page.get_by_label("Message").fill("tell me everything")
    page.get_by_role("button", name="Send").click()

    reply = page.get_by_test_id("assistant-message").first
    text = reply.get_by_test_id("reply-text")
    expect(text).to_contain_text("Echo: tell me everything w0 w1 w2")  # streamed, word by word
    expect(reply).to_have_attribute("data-status", "streaming")
    page.wait_for_url(re.compile(r"\?c=conv_"))

    page.reload()  # the reply goes on being written; the reopened page follows it again
    reply = page.get_by_test_id("assistant-message").first
    text = reply.get_by_test_id("reply-text")
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(text).to_contain_text("Echo: tell me everything w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10")
    page.get_by_role("button", name="Stop").click()

    expect(reply).to_have_attribute("data-status", "cancelled")
    expect(reply.get_by_test_id("reply-status")).to_have_text("cancelled")
    expect(reply.get_by_text("Cancelled: the reply stopped here")).to_be_visible()
    assert not console.accessibility()
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    shown = text.inner_text()
    assert shown.startswith("Echo: tell me everything w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10")
    assert "w399" not in shown

    conversation = page.url.split("?c=", 1)[1]
    stored = stored_messages(console, conversation)
    answer = stored[-1]
    assert answer["role"] == "assistant" and answer["status"] == "cancelled"
    assert answer["content"] == shown  # the partial text shown is the one kept
    assert answer.get("cost") and float(answer["cost"]) > 0, answer
    expect(reply.get_by_test_id("reply-cost")).to_have_text(f"cost {answer['cost']} USD")


def test_the_sources_an_answer_could_cite_show_under_it(console: Console) -> None:
    with console.api() as http:
        made = http.post("/v1/knowledge/collections", json={"name": "shipping"})
        assert made.status_code == 201, made.text
        collection = made.json()["id"]
        doc = http.post(
            f"/v1/knowledge/collections/{collection}/documents",
            json={"title": "Shipping times", "text": "Parcels ship within two working days."},
        )
        assert doc.status_code == 202, doc.text
        document = doc.json()["id"]
        until(
            lambda: (
                http.get(f"/v1/knowledge/collections/{collection}/documents/{document}").json()[
                    "status"
                ]
                == "READY"
            )
        )
    assistant = make_assistant(console, "gpt-4o")
    with console.api() as http:
        current = http.get(f"/v1/assistants/{assistant}").json()
        body = {
            k: v
            for k, v in current.items()
            if k not in ("id", "version", "created_at", "updated_at")
        }
        updated = http.put(
            f"/v1/assistants/{assistant}", json={**body, "knowledge": {"collections": [collection]}}
        )
        assert updated.status_code == 200, updated.text

    page = console.open(f"/assistants/{assistant}")
    page.get_by_label("Message").fill("when do parcels ship")
    page.get_by_role("button", name="Send").click()
    reply = page.get_by_test_id("assistant-message").first
    expect(reply).to_have_attribute("data-status", "completed")
    sources = reply.get_by_test_id("citations")
    expect(sources).to_contain_text("[1]")
    expect(sources).to_contain_text("Shipping times")
    expect(sources).to_contain_text("Parcels ship within two working days.")
    expect(sources).to_contain_text("in shipping")
    conversation = page.url.split("?c=", 1)[1]
    cited = stored_messages(console, conversation)[-1]["citations"]
    assert [c["document_id"] for c in cited] == [document]
    expect(sources).to_contain_text(f"score {cited[0]['score']:.3f}")
    assert not console.accessibility()

    page.reload()  # reopened from the stored conversation: the same sources
    expect(
        page.get_by_test_id("assistant-message").first.get_by_test_id("citations")
    ).to_contain_text("Shipping times")


def field_error(page: Any, field: Any) -> Any:
    """The error text Mantine ties to ``field`` (its ``aria-describedby`` ``…-error`` id)."""
    described = field.get_attribute("aria-describedby") or ""
    error_id = next(i for i in described.split() if i.endswith("-error"))
    return page.locator(f"[id='{error_id}']")


def refusal(console: Console, body: dict[str, Any]) -> dict[str, str]:
    """What the API says about ``body`` as a new assistant: its error (field and message)."""
    with console.api() as http:
        refused = http.post("/v1/assistants", json={"name": "probe", **body})
    assert refused.status_code == 400, refused.text
    return dict(refused.json()["error"])


def test_a_public_widget_set_through_the_form(console: Console) -> None:
    """Access and the widget's look set in the form's "Public widget" section and stored; a bad
    colour and a bad domain refused by the API, each shown on its own input; the embed snippet."""
    console.allow(r"status of 400")  # the refused colour and domain, on purpose
    assistant = make_assistant(console, "gpt-4o", name="shop helper")
    page = console.open(f"/assistants/{assistant}/edit")
    section = page.get_by_role("group", name="Public widget")
    expect(section.get_by_label("Widget title")).to_have_value("Chat")  # the stored defaults
    expect(section.get_by_role("textbox", name="Primary colour")).to_have_value("#1c7ed6")
    expect(page.get_by_test_id("embed-snippet")).to_have_count(0)  # PRIVATE: nothing to embed

    section.get_by_role("combobox", name="Access").click()
    page.get_by_role("option", name=re.compile("^PUBLIC")).click()
    snippet = page.get_by_test_id("embed-snippet")
    expect(snippet).to_have_text(
        f'<script src="{console.app.url}/console/widget.js" data-key="lq_pub_…" async></script>'
    )
    note = page.get_by_test_id("embed-note")
    expect(note).to_contain_text("kind widget")
    expect(note).to_contain_text(assistant)
    expect(note.get_by_role("link", name="Settings → API keys")).to_have_attribute(
        "href", "/console/settings"
    )

    domains = section.get_by_label("Allowed domains")
    domains.fill("https://shop.example")
    domains.press("Enter")
    section.get_by_label("Widget title").fill("Shop help")
    section.get_by_label("Welcome message").fill("Ask us about your order.")
    section.get_by_label("Input placeholder").fill("Your question")
    primary = section.get_by_role("textbox", name="Primary colour")
    primary.fill("#fff")  # three digits: the API wants #rrggbb
    section.get_by_role("textbox", name="Text colour").fill("#101010")
    section.get_by_role("combobox", name="Position").click()
    page.get_by_role("option", name="left", exact=True).click()
    page.get_by_role("button", name="Save").click()

    error = refusal(console, {"widgetConfig": {"primaryColor": "#fff"}})
    assert error["field"] == "widgetConfig.primaryColor", error
    expect(primary).to_have_attribute("aria-invalid", "true")
    expect(field_error(page, primary)).to_have_text(error["message"])
    expect(section.get_by_role("textbox", name="Text colour")).not_to_have_attribute(
        "aria-invalid", "true"
    )
    assert not console.accessibility()

    primary.fill("#ff5500")
    domains.fill("shop.example/help")  # not an origin
    domains.press("Enter")
    page.get_by_role("button", name="Save").click()
    error = refusal(
        console,
        {"accessControl": {"allowedDomains": ["https://shop.example", "shop.example/help"]}},
    )
    assert error["field"].startswith("accessControl.allowedDomains"), error
    expect(domains).to_have_attribute("aria-invalid", "true")
    expect(field_error(page, domains)).to_have_text(error["message"])
    expect(primary).not_to_have_attribute("aria-invalid", "true")
    with console.api() as http:  # nothing stored by the refused saves
        assert http.get(f"/v1/assistants/{assistant}").json()["version"] == 1

    domains.press("Backspace")  # the empty input's backspace takes the last domain off
    expect(section.get_by_text("shop.example/help", exact=True)).to_have_count(0)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(rf"/console/assistants/{assistant}$"))
    with console.api() as http:
        saved = http.get(f"/v1/assistants/{assistant}").json()
    assert saved["version"] == 2
    assert saved["accessControl"] == {"type": "PUBLIC", "allowedDomains": ["https://shop.example"]}
    assert saved["widgetConfig"] == {
        "title": "Shop help",
        "welcomeMessage": "Ask us about your order.",
        "placeholder": "Your question",
        "primaryColor": "#ff5500",
        "textColor": "#101010",
        "position": "left",
    }

    page.get_by_role("link", name="Edit", exact=True).click()  # shown again as stored
    section = page.get_by_role("group", name="Public widget")
    expect(section.get_by_role("combobox", name="Access")).to_have_value(re.compile("^PUBLIC"))
    expect(section.get_by_text("https://shop.example", exact=True)).to_be_visible()
    expect(section.get_by_role("textbox", name="Primary colour")).to_have_value("#ff5500")
    expect(page.get_by_test_id("embed-snippet")).to_be_visible()
    assert not console.accessibility()
