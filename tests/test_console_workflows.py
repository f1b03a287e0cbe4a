"""The console's workflows and executions areas in a real headless Chromium: a workflow created
in the JSON editor (and a bad one refused with the API's field error next to the editor), its
steps graph, a run followed live on the execution page to COMPLETED with its steps on the
timeline and a step's output in the drawer, versions and rollback, and a slow run cancelled from
its page (then resumed)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from playwright.sync_api import expect

from tests.support.browser import Console

RUN_MS = 30_000  # what a run may take to reach its end on a busy machine


def _fill_editor(page: Any, body: dict[str, Any]) -> None:
    editor = page.get_by_role("textbox", name="Workflow definition")
    editor.fill(json.dumps(body, indent=2))


def test_empty_workflows_say_what_to_do(console: Console) -> None:
    page = console.open("/workflows")
    page.get_by_role("heading", name="Workflows").wait_for()
    expect(page.get_by_test_id("empty-state")).to_contain_text("No workflows yet")
    page.get_by_test_id("empty-state").get_by_role("link", name="New workflow").click()
    page.wait_for_url("**/console/workflows/new")
    # the editor starts with an example the API accepts as it is
    example = json.loads(page.get_by_role("textbox", name="Workflow definition").input_value())
    assert example["steps"] and example["name"]


def test_create_run_and_watch_a_workflow(console: Console) -> None:
    console.allow(r"status of 400")  # the refused body below, as Chromium logs it
    page = console.open("/workflows/new")
    page.get_by_role("heading", name="New workflow").wait_for()

    # a typo in a step: refused, the API's message and field shown next to the editor
    _fill_editor(page, {"name": "typo", "steps": [{"step": 1, "target": "noop", "parms": {}}]})
    page.get_by_role("button", name="Save workflow").click()
    error = page.get_by_role("alert", name="definition error")
    expect(error).to_contain_text("steps[0].parms")
    expect(error).to_contain_text("Extra inputs are not permitted")
    expect(page).to_have_url(re.compile(r"/console/workflows/new$"))

    # a good one: a service call and a transform of its result, the DAG's two layers
    body = {
        "name": "quote-of-the-day",
        "mode": "dag",
        "params": {"who": "Ada"},
        "steps": [
            {"step": 1, "target": "noop", "params": {"hello": "{{params.who}}"}},
            {
                "step": 2,
                "target": "quotes-service",
                "action": "fetch",
                "intent": "/api/people/random",
            },
            {
                "step": 3,
                "target": "transform",
                "params": {
                    "expression": "{greeting: a.hello, author: b.fullName}",
                    "input": {"a": "{{step1.result}}", "b": "{{step2.result}}"},
                },
            },
        ],
    }
    _fill_editor(page, body)
    page.get_by_role("button", name="Save workflow").click()
    page.get_by_role("heading", name="quote-of-the-day").wait_for()
    wid = page.url.rsplit("/", 1)[-1]
    stored = console.api().get(f"/v1/workflows/{wid}").json()
    assert stored["name"] == "quote-of-the-day" and len(stored["steps"]) == 3

    # the steps graph: three steps, step 3 waits for 1 and 2
    graph = page.get_by_role("img", name=re.compile("Steps graph"))
    expect(graph).to_have_attribute("aria-label", "Steps graph: 3 steps, 2 dependencies")
    expect(graph.locator("[data-edge='1->3']")).to_have_count(1)
    expect(graph.locator("[data-edge='2->3']")).to_have_count(1)

    # run it with a param of this run
    page.get_by_role("button", name="Run", exact=True).click()
    params = page.get_by_role("textbox", name="Params")
    expect(params).to_have_value(re.compile(r'"who": "Ada"'))
    params.fill('{"who": "Grace"}')
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"/console/executions/ex_"))
    eid = page.url.rsplit("/", 1)[-1]

    status = page.get_by_test_id("execution-status")
    expect(status).to_have_text("COMPLETED", timeout=RUN_MS)
    timeline = page.get_by_role("list", name="steps timeline")
    rows = timeline.get_by_role("listitem")
    expect(rows).to_have_count(3)
    for n in (1, 2, 3):
        row = timeline.get_by_role("listitem", name=re.compile(rf"^step {n} .*: COMPLETED"))
        expect(row).to_have_attribute("data-status", "COMPLETED")
        expect(row.locator("[data-bar]")).to_have_count(1)
    expect(page.get_by_label("execution result")).to_contain_text('"greeting": "Grace"')

    # a step's drawer: its output as the service answered, its inputs and attempts
    timeline.get_by_role("listitem", name=re.compile(r"^step 2 ")).click()
    drawer = page.get_by_role("dialog", name="Step 2")
    expect(drawer.get_by_test_id("step-status")).to_have_text("COMPLETED")
    record = console.api().get(f"/v1/executions/{eid}").json()
    author = next(s for s in record["steps"] if s["step"] == 2)["output"]["fullName"]
    expect(drawer.get_by_label("step output")).to_contain_text(f'"fullName": "{author}"')
    expect(drawer.get_by_label("step inputs")).to_contain_text("/api/people/random")
    expect(drawer.get_by_test_id("step-attempts")).to_have_text("1")
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()

    # the run is in the list, and the status filter keeps and drops it
    page.get_by_role("navigation", name="areas").get_by_role("link", name="Executions").click()
    table = page.get_by_role("table", name="executions")
    expect(table.get_by_role("link", name=eid)).to_be_visible()
    page.get_by_role("combobox", name="Status").click()
    page.get_by_role("option", name="FAILED").click()
    expect(page.get_by_test_id("empty-state")).to_contain_text("No execution matches")
    page.get_by_role("combobox", name="Status").click()
    page.get_by_role("option", name="COMPLETED").click()
    expect(
        page.get_by_role("table", name="executions").get_by_role("link", name=eid)
    ).to_be_visible()


def test_edit_versions_rollback_and_delete(console: Console) -> None:
    console.allow(r"status of 409")
    api = console.api()
    created = api.post(
        "/v1/workflows",
        json={"name": "versioned", "steps": [{"step": 1, "target": "noop", "params": {"v": 1}}]},
    )
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    page = console.open(f"/workflows/{wid}")
    page.get_by_role("heading", name="versioned").wait_for()
    page.get_by_role("link", name="Edit").click()
    editor = page.get_by_role("textbox", name="Workflow definition")
    expect(editor).to_have_value(re.compile(r'"v": 1'))
    definition = json.loads(editor.input_value())
    definition["steps"][0]["params"] = {"v": 2}
    definition["name"] = "versioned-2"
    editor.fill(json.dumps(definition))
    page.get_by_role("button", name="Save new version").click()
    page.get_by_role("heading", name="versioned-2").wait_for()
    assert api.get(f"/v1/workflows/{wid}").json()["version"] == 2

    page.get_by_role("tab", name="Versions").click()
    versions = page.get_by_role("table", name="versions")
    expect(versions.get_by_role("row")).to_have_count(3)  # header + 2
    versions.get_by_role("button", name="Roll back to v1").click()
    page.get_by_role("heading", name="versioned", exact=True).wait_for()
    expect(page.get_by_role("table", name="versions").get_by_role("row")).to_have_count(4)
    now = api.get(f"/v1/workflows/{wid}").json()
    assert now["version"] == 3 and now["steps"][0]["params"] == {"v": 1}

    # a save over a version changed meanwhile is refused (If-Match), the editor says so
    page.get_by_role("link", name="Edit").click()
    editor = page.get_by_role("textbox", name="Workflow definition")
    expect(editor).to_have_value(re.compile(r'"v": 1'))
    meanwhile = {"name": "versioned", "steps": [{"step": 1, "target": "noop"}]}
    assert api.put(f"/v1/workflows/{wid}", json=meanwhile).status_code == 200
    page.get_by_role("button", name="Save new version").click()
    expect(page.get_by_role("alert", name="definition error")).to_contain_text(
        "workflow is at version 4, not 3"
    )
    assert api.get(f"/v1/workflows/{wid}").json()["version"] == 4
    page.get_by_role("link", name="Cancel").click()

    page.get_by_role("button", name="Delete").click()
    confirm = page.get_by_role("dialog", name="Delete versioned?")
    confirm.get_by_role("button", name="Delete workflow").click()
    page.wait_for_url(re.compile(r"/console/workflows$"))
    assert api.get(f"/v1/workflows/{wid}").status_code == 404


def test_a_slow_run_cancelled_from_its_page_and_resumed(console: Console) -> None:
    api = console.api()
    slow = {
        "target": "quotes-service",
        "action": "fetch",
        "intent": "/sleep",
        "params": {"ms": 4000},
    }
    created = api.post(
        "/v1/workflows",
        json={
            "name": "slow",
            "steps": [
                {"step": 1, **slow, "params": {"ms": 4000, "key": "one"}},
                {"step": 2, **slow, "params": {"ms": 4000, "key": "two"}},
                {"step": 3, **slow, "params": {"ms": 4000, "key": "three"}},
            ],
        },
    )
    assert created.status_code == 201, created.text
    page = console.open(f"/workflows/{created.json()['id']}")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"/console/executions/ex_"))
    eid = page.url.rsplit("/", 1)[-1]

    # the live page shows the first step running before anything finishes
    timeline = page.get_by_role("list", name="steps timeline")
    running = timeline.get_by_role("listitem", name=re.compile(r"^step 1 .*: RUNNING"))
    expect(running).to_be_visible()
    # its bar grows with the clock, without an eased transition: the browser asks for reduced
    # motion (tests/support/browser.py)
    bar = running.locator("[data-bar]")
    expect(bar).to_be_visible()
    expect(bar).to_have_css("transition-duration", "0s")
    expect(page.get_by_test_id("execution-status")).to_have_text("RUNNING")
    expect(page.get_by_role("button", name="Resume execution")).to_have_count(0)
    page.get_by_role("button", name="Cancel execution").click()

    expect(page.get_by_test_id("execution-status")).to_have_text("CANCELLED", timeout=RUN_MS)
    expect(page.get_by_role("button", name="Cancel execution")).to_have_count(0)
    cancelled = timeline.get_by_role("listitem", name=re.compile(r": CANCELLED"))
    expect(cancelled).to_have_count(1)
    record = api.get(f"/v1/executions/{eid}").json()
    assert record["status"] == "CANCELLED"
    assert not any(s["status"] == "COMPLETED" and s["step"] == 3 for s in record["steps"])

    # Resume runs it again from its unfinished steps, followed live to the end
    page.get_by_role("button", name="Resume execution").click()
    expect(page.get_by_test_id("execution-status")).to_have_text("COMPLETED", timeout=RUN_MS)
    expect(timeline.get_by_role("listitem", name=re.compile(r": COMPLETED"))).to_have_count(3)


def test_retries_and_cache_hits_on_the_timeline(console: Console) -> None:
    api = console.api()
    key = uuid.uuid4().hex[:8]
    created = api.post(
        "/v1/workflows",
        json={
            "name": "retried-and-cached",
            "steps": [
                {
                    "step": 1,
                    "target": "quotes-service",
                    "action": "fetch",
                    "intent": "/flaky",
                    "params": {"key": key, "fail": 2},
                    "retry": {"maxAttempts": 3, "initialDelayMs": 10, "maxDelayMs": 20},
                },
                {
                    "step": 2,
                    "target": "quotes-service",
                    "action": "fetch",
                    "intent": "/api/people/random",
                    "params": {"i": 1, "key": key},
                    "cacheConfig": {"enabled": True, "ttl": "600"},
                },
            ],
        },
    )
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    runs = [api.post(f"/v1/workflows/{wid}/execute?wait=true", json={}) for _ in range(2)]
    assert [r.json()["status"] for r in runs] == ["COMPLETED", "COMPLETED"], runs[-1].text

    page = console.open(f"/executions/{runs[0].json()['id']}")
    timeline = page.get_by_role("list", name="steps timeline")
    expect(
        timeline.get_by_role("listitem", name="step 1 quotes-service: COMPLETED (3 attempts)")
    ).to_be_visible()
    expect(
        timeline.get_by_role("listitem", name="step 2 quotes-service: COMPLETED")
    ).to_be_visible()
    expect(timeline.get_by_text("\u00d73 attempts")).to_be_visible()
    expect(timeline.get_by_text("cache hit")).to_have_count(0)

    page = console.open(f"/executions/{runs[1].json()['id']}")
    timeline = page.get_by_role("list", name="steps timeline")
    cached = timeline.get_by_role("listitem", name="step 2 quotes-service: COMPLETED (cache hit)")
    expect(cached.get_by_text("cache hit")).to_be_visible()
    cached.click()
    drawer = page.get_by_role("dialog", name="Step 2")
    expect(drawer.get_by_text("cache hit")).to_be_visible()
    expect(drawer.get_by_test_id("step-attempts")).to_have_text("0")


def test_workflow_and_execution_screens_are_accessible(console: Console) -> None:
    console.allow(r"status of 400")
    found: dict[str, list[str]] = {}

    def check(screen: str) -> None:
        if violations := console.accessibility():
            found[screen] = violations

    page = console.open("/workflows")
    expect(page.get_by_test_id("empty-state")).to_be_visible()
    check("workflows, empty")
    page = console.open("/executions")
    expect(page.get_by_test_id("empty-state")).to_be_visible()
    check("executions, empty")

    page = console.open("/workflows/new")
    _fill_editor(page, {"name": "", "steps": []})
    page.get_by_role("button", name="Save workflow").click()
    expect(page.get_by_role("alert", name="definition error")).to_contain_text("name")
    check("new workflow, refused")

    api = console.api()
    body = {
        "name": "a11y",
        "mode": "dag",
        "steps": [
            {"step": 1, "target": "noop"},
            {"step": 2, "target": "noop", "params": {"x": "{{step1.result}}"}},
        ],
    }
    wid = api.post("/v1/workflows", json=body).json()["id"]
    assert api.put(f"/v1/workflows/{wid}", json=body).status_code == 200
    page = console.open(f"/workflows/{wid}")
    expect(page.get_by_role("img", name=re.compile("Steps graph"))).to_be_visible()
    check("workflow, graph")
    page.get_by_role("tab", name="Versions").click()
    expect(page.get_by_role("table", name="versions").get_by_role("row")).to_have_count(3)
    check("workflow, versions")

    eid = api.post(f"/v1/workflows/{wid}/execute?wait=true", json={}).json()["id"]
    page = console.open(f"/executions/{eid}")
    expect(page.get_by_test_id("execution-status")).to_have_text("COMPLETED")
    check("execution")
    page.get_by_role("list", name="steps timeline").get_by_role("listitem").first.click()
    expect(page.get_by_role("dialog", name="Step 1")).to_be_visible()
    check("execution, step drawer")
    page = console.open("/executions")
    expect(page.get_by_role("table", name="executions")).to_be_visible()
    check("executions")
    assert not found, found


def test_a_dropped_connection_on_a_live_run_is_said_and_followed_again(console: Console) -> None:
    """The execution page's stream ends before the run does (twice: a proxy cutting it, say):
    the page says it is reconnecting, reconnects with the last event's id (Last-Event-ID) and
    follows the run to its end."""
    api = console.api()
    slow = {"target": "quotes-service", "action": "fetch", "intent": "/sleep"}
    body = {
        "name": "two slow steps",
        "steps": [
            {"step": i, **slow, "params": {"ms": 2500, "key": uuid.uuid4().hex}} for i in (1, 2)
        ],
    }
    wid = api.post("/v1/workflows", json=body).json()["id"]
    eid = api.post(f"/v1/workflows/{wid}/execute", json={}).json()["id"]
    asked: list[str | None] = []

    def cut_twice(route: Any, request: Any) -> None:
        asked.append(request.headers.get("last-event-id"))
        if len(asked) > 2:
            route.continue_()
            return
        record = api.get(f"/v1/executions/{eid}").text  # one real event, then the end
        event = f"id: cut-{len(asked)}\nevent: execution\ndata: {record}\n\n"
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=event)

    console.page.route(re.compile(r".*/v1/executions/[^/]+/stream$"), cut_twice)
    page = console.open(f"/executions/{eid}")
    notice = page.get_by_role("status").filter(has_text="reconnecting")
    expect(notice).to_be_visible()
    expect(page.get_by_test_id("execution-status")).to_have_text("COMPLETED", timeout=RUN_MS)
    expect(notice).to_have_count(0)
    timeline = page.get_by_role("list", name="steps timeline")
    expect(timeline.get_by_role("listitem", name=re.compile(r": COMPLETED"))).to_have_count(2)
    assert asked[:3] == [None, "cut-1", "cut-2"]  # each reconnect said what it had seen
