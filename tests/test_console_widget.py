"""The embeddable chat widget (``/console/widget.js``) in a real headless Chromium, embedded by a
page of another origin — a second loopback server — as a customer's site embeds it, with only
its key: the widget learns its assistant and look from ``GET /v1/widget`` (the assistant's
``widgetConfig``, each field overridable by a ``data-*`` attribute); the visitor opens the bubble,
asks, watches the answer stream in with its sources, reloads and finds the conversation again; a
site the key does not allow, a PRIVATE assistant and a site outside the assistant's
``allowedDomains`` get a clear error and no answer; the page's styles and the widget's do not
reach each other."""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import httpx
import pytest
from playwright.sync_api import Expect, Locator, Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.support.browser import ARTIFACTS, AXE, WAIT_MS, LiveApp, serve_app
from tests.support.http import until

PRICE = {"input": "2.50", "cache_read": "1.25", "output": "10.00"}  # per million tokens
SLOW = "slow-20-40"  # the OpenAI fake: the echo, then 40 more words, one every 20 ms
HOSTILE = "* { color: red !important; font-size: 40px; } button { background: yellow !important; }"
PAGES: dict[str, str] = {}  # what the customer's site serves, by path
expect = Expect()  # this module's: a stream on a busy machine may take longer than 5 s
expect.set_options(timeout=WAIT_MS)


def page_html(widget: str = "", style: str = "") -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Shop</title><style>{style}</style></head>
<body><h1>Our shop</h1><p id="para">We sell things.</p><button id="buy">Buy</button>
<input id="search" value="socks">{widget}</body></html>"""


def script_tag(app: LiveApp, key: str, **data: str) -> str:
    """The embed snippet: the key, and any ``data-*`` attribute given (``text_color`` is
    ``data-text-color``)."""
    extra = "".join(
        f' data-{name.replace("_", "-")}="{html.escape(v)}"' for name, v in data.items()
    )
    return f'<script src="{app.url}/console/widget.js" data-key="{key}"{extra} async></script>'


CONFIG = {
    "title": "Shop help",
    "welcomeMessage": "Ask about orders",
    "placeholder": "Your question about an order",
    "primaryColor": "#aa3300",
    "textColor": "#ffffee",
    "position": "left",
}


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The customer's site: another loopback origin than the gateway's."""

    async def serve(request: Request) -> Response:
        found = PAGES.get(request.path_params["name"])
        return HTMLResponse(found) if found else Response(status_code=404)

    url, server, thread = serve_app(Starlette(routes=[Route("/{name}", serve)]))
    yield url
    server.should_exit = True
    thread.join(30)


@dataclass
class Shop:
    """A team with a knowledge collection, on the console app."""

    app: LiveApp
    api: httpx.Client
    collection: str

    def assistant(
        self,
        model: str = SLOW,
        *,
        config: dict[str, str] | None = None,
        access: dict[str, Any] | None = None,
    ) -> str:
        """An assistant answering from the collection; PUBLIC unless ``access`` says otherwise."""
        priced = self.api.put(f"/v1/models/openai:{model}/price", json=PRICE)
        assert priced.status_code == 200, priced.text
        spec: dict[str, Any] = {
            "name": "shop help",
            "defaultModel": {"provider": "openai", "modelName": model},
            "knowledge": {"collections": [self.collection], "topK": 1},
            "accessControl": access or {"type": "PUBLIC"},
        }
        if config is not None:
            spec["widgetConfig"] = config
        made = self.api.post("/v1/assistants", json=spec)
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    def widget_key(self, assistant: str, origins: list[str]) -> str:
        issued = self.api.post(
            "/v1/api-keys",
            json={
                "name": "site",
                "kind": "widget",
                "resource": assistant,
                "allowed_origins": origins,
            },
        )
        assert issued.status_code == 201, issued.text
        return str(issued.json()["key"])


@pytest.fixture(scope="module")
def shop(console_app: LiveApp) -> Iterator[Shop]:
    with console_app.client(f"shop-{uuid.uuid4().hex[:8]}") as api:
        made = api.post("/v1/knowledge/collections", json={"name": "policies"})
        assert made.status_code == 201, made.text
        collection = made.json()["id"]
        doc = api.post(
            f"/v1/knowledge/collections/{collection}/documents",
            json={"title": "Shipping policy", "text": "We ship abroad to every EU country."},
        )
        assert doc.status_code == 202, doc.text
        url = f"/v1/knowledge/collections/{collection}/documents/{doc.json()['id']}"
        until(lambda: api.get(url).json()["status"] == "READY")
        yield Shop(console_app, api, collection)


@dataclass
class Visit:
    """One visitor's browser context; what its pages logged as errors and which requests failed."""

    page: Page
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def visit(request: pytest.FixtureRequest, browser: Any) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    found = Visit(page)
    page.on("console", lambda m: m.type == "error" and found.errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: found.errors.append(f"page error: {e}"))
    page.on(
        "requestfailed",
        lambda r: (
            "ERR_ABORTED" not in (r.failure or "")
            and found.errors.append(f"failed: {r.method} {r.url} {r.failure}")
        ),
    )
    yield found
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    context.close()


def widget(page: Page) -> Locator:
    """The widget's shadow root content (Playwright's locators pierce open shadow roots)."""
    return page.locator("linqra-chat")


def stored(page: Page, key: str) -> dict[str, Any]:
    raw = page.evaluate("k => localStorage.getItem(k)", f"linqra-widget:{key}")
    assert raw, "the widget kept nothing in localStorage"
    return dict(json.loads(raw))


def serious_accessibility_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings in the widget (it looks into open shadow roots)."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async () => (await axe.run('linqra-chat', {resultTypes: ['violations']})).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => `${v.id}: ${v.help} (${v.nodes.map(n => n.target.join(' ')).join(', ')})`)"
    )
    return list(found)


WATCH_STREAMING = """() => {
  const root = document.querySelector('linqra-chat').shadowRoot;
  window.partials = [];
  new MutationObserver(() => {
    const reply = [...root.querySelectorAll('.msg.assistant')].pop();
    const text = reply && reply.querySelector('.text').textContent;
    if (reply && reply.dataset.status === 'streaming' && text && text !== window.partials.at(-1))
      window.partials.push(text);
  }).observe(root, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def test_a_visitor_asks_sees_the_answer_stream_with_sources_and_finds_it_after_a_reload(
    site: str, shop: Shop, visit: Visit
) -> None:
    assistant = shop.assistant(config=CONFIG)
    key = shop.widget_key(assistant, [site])
    PAGES["shop"] = page_html(script_tag(shop.app, key))  # the key only: no data-assistant
    page = visit.page
    page.goto(f"{site}/shop")
    chat = widget(page)
    bubble = chat.get_by_role("button", name="Open chat")
    expect(bubble).to_have_attribute("aria-expanded", "false")
    # the bubble's look is the assistant's widgetConfig: its colour, on the left
    expect(bubble).to_have_css("background-color", "rgb(170, 51, 0)")
    expect(bubble).to_have_css("color", "rgb(255, 255, 238)")
    at = bubble.bounding_box()
    assert at is not None and at["x"] < 100, at
    bubble.click()
    panel = chat.get_by_role("dialog", name="Shop help")
    heading = panel.get_by_role("heading", name="Shop help")
    expect(heading).to_be_visible()
    expect(heading).to_have_css("color", "rgb(255, 255, 238)")
    expect(panel.locator(".head")).to_have_css("background-color", "rgb(170, 51, 0)")
    log = panel.get_by_role("log")
    expect(log).to_have_attribute("aria-live", "polite")
    expect(log.locator(".msg.welcome")).to_have_text("Ask about orders")
    expect(panel.get_by_role("textbox", name="Message")).to_have_attribute(
        "placeholder", "Your question about an order"
    )
    expect(chat.get_by_role("button", name="Close chat")).to_have_attribute("aria-expanded", "true")
    expect(panel.get_by_role("alert")).to_be_hidden()
    page.evaluate(WATCH_STREAMING)

    box = panel.get_by_role("textbox", name="Message")
    box.fill("do you ship abroad?")
    box.press("Enter")
    reply = log.locator(".msg.assistant").last
    expect(reply).to_have_attribute("data-status", "completed")
    expect(reply).to_have_attribute("aria-busy", "false")
    text = reply.locator(".text").inner_text()
    assert text.startswith("Echo:") and "do you ship abroad?" in text and text.endswith("w39")
    sources = reply.get_by_role("list", name="Sources")
    expect(sources).to_have_text("[1] Shipping policy")
    # token by token: the reply was seen growing, each sight a prefix of the next and of the end
    partials: list[str] = page.evaluate("window.partials")
    assert len(partials) >= 5, partials
    assert all(b.startswith(a) and len(b) > len(a) for a, b in pairwise(partials))
    assert text.startswith(partials[-1]) and len(partials[0]) < len(text) / 2

    # the same visitor's next message continues the conversation (its token goes with it)
    box.fill("and to Norway?")
    panel.get_by_role("button", name="Send").click()
    expect(log.locator(".msg.assistant")).to_have_count(2)
    expect(log.locator(".msg.assistant").last).to_have_attribute("data-status", "completed")
    expect(log.locator(".msg.assistant").last).to_contain_text("Norway")
    kept = stored(page, key)
    conversation = kept["conversationId"]
    assert kept["token"] and "run" not in kept
    messages = shop.api.get(f"/v1/conversations/{conversation}/messages").json()["items"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        "do you ship abroad?",
        "and to Norway?",
    ]
    assert [m["status"] for m in messages if m["role"] == "assistant"] == ["completed"] * 2

    page.reload()
    chat = widget(page)
    log = chat.get_by_role("dialog", name="Shop help").get_by_role("log")  # still open
    expect(log.locator(".msg.user .text")).to_have_text(["do you ship abroad?", "and to Norway?"])
    expect(log.locator(".msg.assistant")).to_have_count(2)
    expect(log.locator(".msg.assistant").first.locator(".text")).to_have_text(text)
    expect(log.locator(".msg.assistant").first.get_by_role("list", name="Sources")).to_have_text(
        "[1] Shipping policy"
    )
    page.screenshot(path=str(ARTIFACTS / "widget-conversation.png"))
    assert serious_accessibility_violations(page) == []
    # and the conversation goes on after the reload, in the same conversation
    chat.get_by_role("textbox", name="Message").fill("and to Iceland?")
    chat.get_by_role("textbox", name="Message").press("Enter")
    expect(log.locator(".msg.assistant")).to_have_count(3)
    expect(log.locator(".msg.assistant").last).to_have_attribute("data-status", "completed")
    assert stored(page, key)["conversationId"] == conversation
    messages = shop.api.get(f"/v1/conversations/{conversation}/messages").json()["items"]
    assert [m["content"] for m in messages if m["role"] == "user"][-1] == "and to Iceland?"

    # closing it: the bubble again, focused, and it stays closed across a reload
    chat.get_by_role("button", name="Hide chat").click()
    expect(chat.get_by_role("dialog")).to_be_hidden()
    expect(chat.get_by_role("button", name="Open chat")).to_be_focused()
    page.reload()
    expect(widget(page).get_by_role("button", name="Open chat")).to_be_visible()
    expect(widget(page).get_by_role("dialog")).to_be_hidden()
    assert visit.errors == []


def test_a_reload_while_the_answer_is_written_follows_it_on_without_losing_or_repeating_text(
    site: str, shop: Shop, visit: Visit
) -> None:
    assistant = shop.assistant("slow-30-80")  # about 2.5 s of words
    key = shop.widget_key(assistant, [site])
    # a data-assistant naming another assistant: the key's answer wins
    other = shop.assistant()
    PAGES["long"] = page_html(script_tag(shop.app, key, assistant=other))
    page = visit.page
    page.goto(f"{site}/long")
    chat = widget(page)
    chat.get_by_role("button", name="Open chat").click()
    chat.get_by_role("textbox", name="Message").fill("tell me everything")
    chat.get_by_role("textbox", name="Message").press("Enter")
    reply = chat.locator(".msg.assistant").last
    expect(reply.locator(".text")).to_contain_text(" w3 ")
    expect(chat.get_by_role("button", name="Send")).to_be_hidden()  # one reply at a time
    expect(chat.get_by_role("button", name="Stop")).to_be_visible()
    resumed: list[str] = []
    page.on(
        "request",
        lambda r: r.url.endswith("/stream") and resumed.append(r.headers.get("last-event-id", "")),
    )
    page.reload()  # mid-answer: the page goes, the run goes on
    chat = widget(page)
    reply = chat.locator(".msg.assistant").last
    expect(reply).to_have_attribute("data-status", "completed", timeout=30_000)
    words = " ".join(f"w{i}" for i in range(80))
    expect(reply.locator(".text")).to_have_text(f"Echo: tell me everything {words}")
    expect(chat.locator(".msg.assistant")).to_have_count(1)
    expect(chat.get_by_role("button", name="Send")).to_be_enabled()
    assert len(resumed) == 1 and re.fullmatch(r".+:\d+", resumed[0]), resumed  # after the last seen
    kept = stored(page, key)
    assert "run" not in kept and kept["messages"][-1]["status"] == "completed"
    conversation = kept["conversationId"]
    messages = shop.api.get(f"/v1/conversations/{conversation}/messages").json()["items"]
    assert messages[-1]["content"] == f"Echo: tell me everything {words}"
    assert shop.api.get(f"/v1/conversations/{conversation}").json()["assistant_id"] == assistant
    listed = shop.api.get("/v1/conversations", params={"assistant_id": other}).json()
    assert listed["items"] == []

    # Stop: the reply ends where it was, cancelled, and the visitor may ask again
    chat.get_by_role("textbox", name="Message").fill("and again")
    chat.get_by_role("textbox", name="Message").press("Enter")
    reply = chat.locator(".msg.assistant").last
    expect(reply.locator(".text")).to_contain_text(" w3 ")
    chat.get_by_role("button", name="Stop").click()
    expect(reply).to_have_attribute("data-status", "cancelled")
    expect(reply.locator(".status")).to_have_text("Stopped.")
    expect(chat.get_by_role("button", name="Send")).to_be_visible()
    expect(chat.get_by_role("button", name="Stop")).to_be_hidden()
    stopped = reply.locator(".text").inner_text()
    assert stopped.startswith("Echo: and again w0") and not stopped.endswith("w79")
    messages = shop.api.get(f"/v1/conversations/{conversation}/messages").json()["items"]
    assert (messages[-1]["status"], messages[-1]["content"]) == ("cancelled", stopped)
    assert visit.errors == []


def test_a_site_the_key_does_not_allow_gets_a_clear_error_and_no_answer(
    site: str, shop: Shop, visit: Visit
) -> None:
    assistant = shop.assistant(config=CONFIG)
    key = shop.widget_key(assistant, ["https://shop.example"])  # not this site
    PAGES["elsewhere"] = page_html(script_tag(shop.app, key))
    page = visit.page
    asked: list[str] = []
    page.on("request", lambda r: r.method != "OPTIONS" and asked.append(r.url))
    page.goto(f"{site}/elsewhere")
    chat = widget(page)
    chat.get_by_role("button", name="Open chat").click()
    alert = chat.get_by_role("alert")
    expect(alert).to_contain_text("This chat is not available on this website")  # at once
    expect(chat.get_by_role("heading")).to_have_text("Chat")  # the config was not readable
    box = chat.get_by_role("textbox", name="Message")
    box.fill("do you ship abroad?")
    box.press("Enter")  # asks the gateway again, which refuses again
    expect(alert).to_contain_text("This chat is not available on this website")
    expect(alert).to_contain_text("not allowed to use this chat")
    expect(chat.locator(".msg.assistant")).to_have_count(0)
    expect(chat.locator(".msg.user")).to_have_count(0)
    expect(box).to_have_value("do you ship abroad?")  # nothing was sent: the text is kept
    expect(chat.get_by_role("button", name="Send")).to_be_enabled()
    listed = shop.api.get("/v1/conversations", params={"assistant_id": assistant}).json()
    assert listed["items"] == []
    assert [u for u in asked if u.endswith("/v1/widget")], asked
    assert not [u for u in asked if "/chat" in u], asked
    # what the browser reported: the gateway's refusal, unreadable by the page (no CORS)
    assert visit.errors, "the refused request left no trace"
    assert any("CORS" in e for e in visit.errors), visit.errors
    assert all(re.search(r"CORS|/v1/widget|net::ERR_FAILED", e) for e in visit.errors), visit.errors


def test_a_private_assistant_or_a_site_outside_its_domains_gets_a_clear_error_and_no_answer(
    site: str, shop: Shop, visit: Visit
) -> None:
    """The key allows the site, the assistant does not: PRIVATE (the default), or PUBLIC on
    other domains only. ``GET /v1/widget`` is a readable 403: the widget says so, sends nothing."""
    private = shop.assistant(config=CONFIG, access={"type": "PRIVATE"})
    elsewhere = shop.assistant(
        config=CONFIG, access={"type": "PUBLIC", "allowedDomains": ["https://shop.example"]}
    )
    page = visit.page
    asked: list[str] = []
    page.on("request", lambda r: r.method != "OPTIONS" and asked.append(r.url))
    for name, assistant, why in [
        ("private", private, "its assistant does not answer on web pages"),
        ("other-domains", elsewhere, "this site is not allowed to use this chat"),
    ]:
        key = shop.widget_key(assistant, [site])
        PAGES[name] = page_html(script_tag(shop.app, key))
        page.goto(f"{site}/{name}")
        chat = widget(page)
        chat.get_by_role("button", name="Open chat").click()
        alert = chat.get_by_role("alert")
        expect(alert).to_have_text(f"This chat is not available on this website: {why}.")
        expect(chat.get_by_role("heading")).to_have_text("Chat")  # not the refused config's
        box = chat.get_by_role("textbox", name="Message")
        box.fill("do you ship abroad?")
        box.press("Enter")
        expect(alert).to_have_text(f"This chat is not available on this website: {why}.")
        expect(box).to_have_value("do you ship abroad?")  # nothing was sent: the text is kept
        expect(chat.locator(".msg.user")).to_have_count(0)
        expect(chat.locator(".msg.assistant")).to_have_count(0)
        expect(chat.get_by_role("button", name="Send")).to_be_enabled()
        listed = shop.api.get("/v1/conversations", params={"assistant_id": assistant}).json()
        assert listed["items"] == []
        assert "conversationId" not in stored(page, key)
    assert len([u for u in asked if u.endswith("/v1/widget")]) == 2, asked  # one per page
    assert not [u for u in asked if "/chat" in u], asked
    # only the two 403s, as the browser logs any failed load
    assert len(visit.errors) == 2, visit.errors
    assert all("403" in e for e in visit.errors), visit.errors


PAGE_STYLE = """els => els.map(id => {
  const s = getComputedStyle(document.getElementById(id));
  return [id, ['color', 'font-size', 'font-family', 'background-color', 'margin-top',
    'padding-top', 'line-height', 'box-sizing', 'display', 'border-top-width']
    .map(p => s.getPropertyValue(p))];
})"""
PAGE_ELEMENTS = ["para", "buy", "search"]
WIDGET_STYLE = ["color", "font-size", "font-family", "line-height", "background-color"]


def widget_style(chat: Locator) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, element in {
        "welcome": chat.locator(".msg.welcome"),
        "title": chat.get_by_role("heading"),
        "box": chat.get_by_role("textbox", name="Message"),
        "send": chat.get_by_role("button", name="Send"),
    }.items():
        found[name] = element.evaluate(
            "(e, props) => props.map(p => getComputedStyle(e).getPropertyValue(p))", WIDGET_STYLE
        )
    return found


def test_the_page_and_the_widget_keep_their_own_styles(site: str, shop: Shop, visit: Visit) -> None:
    """... and the page's ``data-*`` attributes win over the assistant's widgetConfig."""
    assistant = shop.assistant(config={**CONFIG, "position": "right"})
    key = shop.widget_key(assistant, [site])
    tag = script_tag(shop.app, key, color="#0a7d33", position="left", title="Returns desk")
    PAGES["calm"] = page_html(tag)
    PAGES["hostile"] = page_html(tag, style=HOSTILE)
    PAGES["hostile-alone"] = page_html(style=HOSTILE)
    page = visit.page

    # the widget looks the same on a calm page and on one styling every element it can reach
    seen = {}
    for name in ("calm", "hostile"):
        page.goto(f"{site}/{name}")
        chat = widget(page)
        if name == "calm":
            chat.get_by_role("button", name="Open chat").click()
        expect(chat.get_by_role("dialog")).to_be_visible()  # on the next page: still open
        expect(chat.locator(".msg.welcome")).to_have_css("font-size", "14px")
        expect(chat.locator(".msg.welcome")).to_have_css("color", "rgb(31, 35, 40)")
        expect(chat.get_by_role("heading")).to_have_css("font-size", "16px")
        expect(chat.get_by_role("heading")).to_have_text("Returns desk")  # data-title
        expect(chat.locator(".msg.welcome")).to_have_text("Ask about orders")  # the config's
        expect(chat.locator(".head")).to_have_css("color", "rgb(255, 255, 238)")  # the config's
        expect(chat.get_by_role("button", name="Close chat")).to_have_css(
            "background-color",
            "rgb(10, 125, 51)",  # data-color
        )
        seen[name] = widget_style(chat)
        box = chat.get_by_role("button", name="Close chat").bounding_box()
        assert box is not None and box["x"] < 100  # data-position="left" over the config's right
    assert seen["hostile"] == seen["calm"]

    # the page looks the same with the widget as without it, and has no style sheet of it
    page.goto(f"{site}/hostile-alone")
    alone = page.evaluate(PAGE_STYLE, PAGE_ELEMENTS)
    page.goto(f"{site}/hostile")
    expect(widget(page).get_by_role("dialog")).to_be_visible()
    assert page.evaluate(PAGE_STYLE, PAGE_ELEMENTS) == alone
    assert dict(alone)["para"][:2] == ["rgb(255, 0, 0)", "40px"]  # the page's own rules hold
    assert page.evaluate("document.styleSheets.length") == 1  # the page's own <style> only
    assert page.evaluate("[...document.body.children].map(e => e.localName)") == [
        "h1",
        "p",
        "button",
        "input",
        "script",
        "linqra-chat",
    ]
    assert visit.errors == []


def test_a_closed_shadow_root_works_out_of_the_pages_reach(
    site: str, shop: Shop, visit: Visit
) -> None:
    """``data-shadow="closed"``: the page cannot reach inside, the visitor still can (by mouse
    and keyboard); what it asked reaches the assistant and is answered."""
    assistant = shop.assistant("gpt-4o")
    key = shop.widget_key(assistant, [site])
    PAGES["closed"] = page_html(script_tag(shop.app, key, shadow="closed"))
    page = visit.page
    page.goto(f"{site}/closed")
    at = "([x, y]) => document.elementFromPoint(x, y)?.localName ?? ''"
    bubble, panel = [1152, 752], [1000, 400]  # the bubble's centre; inside the panel
    page.wait_for_function(f"({at})({bubble}) === 'linqra-chat'")
    assert page.evaluate("document.querySelector('linqra-chat').shadowRoot") is None
    assert page.evaluate(at, panel) == "html"  # closed: nothing drawn there yet
    page.mouse.click(*bubble)
    page.wait_for_function(f"({at})({panel}) === 'linqra-chat'")
    page.keyboard.type("hello from a closed root")  # the message box has the focus
    page.keyboard.press("Enter")

    def answered() -> bool:
        listed = shop.api.get("/v1/conversations", params={"assistant_id": assistant}).json()
        if not listed["items"]:
            return False
        url = f"/v1/conversations/{listed['items'][0]['id']}/messages"
        items = shop.api.get(url).json()["items"]  # empty until the first message is written
        return [(m["role"], m["status"]) for m in items][-1:] == [("assistant", "completed")]

    until(answered)
    page.keyboard.press("Escape")  # closes the panel
    page.wait_for_function(f"({at})({panel}) === 'html'")
    page.wait_for_function(
        "k => JSON.parse(localStorage.getItem(k)).messages.at(-1).status === 'completed'",
        arg=f"linqra-widget:{key}",
    )
    kept = stored(page, key)
    assert [m["text"] for m in kept["messages"]] == [
        "hello from a closed root",
        "Echo: hello from a closed root",
    ]
    assert visit.errors == []
