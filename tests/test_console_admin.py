"""The console's admin areas in a real headless Chromium: agents and their tasks (the cron
preview as it is typed, a run and its detail), usage and costs after an LLM call, the team
budget with its field error, and an API key shown once, listed and revoked."""

from __future__ import annotations

import re
from decimal import Decimal

from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS, Console

BAD_REQUEST = r"status of 400"  # Chromium logs each refused request as a console error


def _pick(page, label: str, option: str) -> None:  # type: ignore[no-untyped-def]
    """Choose ``option`` in the Mantine select labelled ``label``."""
    field = page.get_by_role("combobox", name=label, exact=True)
    field.or_(page.get_by_role("textbox", name=label, exact=True)).first.click()
    page.get_by_role("option", name=option, exact=True).click()


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """A screenshot of a step worth looking at, next to the tests' own."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_agent_task_cron_preview_run_and_detail(console: Console) -> None:
    console.allow(BAD_REQUEST)
    page = console.open("/agents")
    expect(page.get_by_text("No agents yet")).to_be_visible()
    page.get_by_role("button", name="New agent").click()
    page.get_by_role("textbox", name="Name").fill("nightly")
    page.get_by_role("button", name="Create agent").click()
    expect(page.get_by_role("heading", name="nightly")).to_be_visible()
    expect(page.get_by_text("This agent has no tasks")).to_be_visible()

    # edited: a refused value shows under its field, a good one is saved
    page.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("dialog", name="Edit nightly")
    edit.get_by_role("textbox", name="Max concurrency").fill("0")
    edit.get_by_role("button", name="Save").click()
    expect(
        edit.get_by_text(re.compile(r"max_concurrency: .*greater than or equal to 1"))
    ).to_be_visible()
    edit.get_by_role("textbox", name="Max concurrency").fill("2")
    edit.get_by_role("textbox", name="Description").fill("sums at night")
    edit.get_by_role("button", name="Save").click()
    expect(page.get_by_text("sums at night · up to 2 at once · enabled")).to_be_visible()

    page.get_by_role("button", name="New task").click()
    dialog = page.get_by_role("dialog", name="New task")
    dialog.get_by_role("textbox", name="Name").fill("sum")
    # a definition the API refuses: its message under the definition
    _pick(page, "Type", "WORKFLOW_EMBEDDED")
    dialog.get_by_role("textbox", name="Definition (JSON)").fill('{"steps": [{"step": 1}]}')
    dialog.get_by_role("button", name="Create task").click()
    expect(dialog.get_by_text("config.steps[0].target: Field required")).to_be_visible()

    _pick(page, "Type", "DATA_PROCESSING")
    dialog.get_by_role("textbox", name="Definition (JSON)").fill('{"expression": "sum(values)"}')
    _pick(page, "Trigger", "Schedule (cron)")
    cron = dialog.get_by_role("textbox", name="Cron expression")
    cron.fill("0 0")  # not a Quartz expression yet: why, as typed
    expect(dialog.get_by_test_id("cron-preview")).to_contain_text("6 or 7 fields")
    cron.fill("0 30 9 ? * MON-FRI")
    expected = console.api().get(
        "/v1/cron/next", params={"expression": "0 30 9 ? * MON-FRI", "count": 5}
    )
    assert expected.status_code == 200
    times = expected.json()["next"]
    fire_times = dialog.get_by_role("list", name="next fire times").get_by_role("listitem")
    expect(fire_times).to_have_count(5)
    for i, instant in enumerate(times):
        expect(fire_times.nth(i)).to_have_text(instant.replace("T", " ").replace("Z", " UTC"))
    _shot(page, "admin-task-form-cron-preview")
    dialog.get_by_role("button", name="Create task").click()
    expect(dialog).to_be_hidden()

    tasks = page.get_by_role("table", name="tasks")
    row = tasks.get_by_role("row").filter(has_text="sum")
    expect(row).to_contain_text("cron 0 30 9 ? * MON-FRI")
    agent_id = page.url.rsplit("/", 1)[1]
    stored = console.api().get(f"/v1/agents/{agent_id}/tasks").json()["items"]
    assert [(t["name"], t["type"], t["config"]) for t in stored] == [
        ("sum", "DATA_PROCESSING", {"expression": "sum(values)"})
    ]
    task_id = stored[0]["id"]

    # disable, then enable again: the API says what the switch shows
    switch = row.get_by_role("switch", name="enable sum")
    switch.click(force=True)
    expect(switch).not_to_be_checked()
    assert console.api().get(f"/v1/tasks/{task_id}").json()["enabled"] is False
    switch.click(force=True)
    expect(switch).to_be_checked()
    assert console.api().get(f"/v1/tasks/{task_id}").json()["enabled"] is True

    # the schedule with its next fire times
    page.get_by_role("tab", name="Schedules").click()
    schedules = page.get_by_role("table", name="schedules")
    expect(schedules).to_contain_text("0 30 9 ? * MON-FRI")
    expect(
        schedules.get_by_role("list", name="next fire times").get_by_role("listitem")
    ).to_have_count(3)
    expect(schedules.get_by_role("listitem").first).to_contain_text(" 09:30:00 UTC")

    # run now with an input; the execution finishes in the list and shows its result
    page.get_by_role("tab", name="Tasks").click()
    row.get_by_role("button", name="Run now").click()
    run = page.get_by_role("dialog", name="Run sum now")
    run.get_by_role("textbox", name="Input (JSON)").fill('{"values": [1, 2, 39]}')
    run.get_by_role("button", name="Run").click()
    executions = page.get_by_role("table", name="task executions")
    expect(executions.get_by_text("COMPLETED")).to_be_visible()
    executions.get_by_role("row").nth(1).get_by_role("button").click()
    detail = page.get_by_test_id("execution-detail")
    expect(detail.get_by_text("COMPLETED")).to_be_visible()
    expect(detail.get_by_label("result")).to_have_text("42")
    expect(detail.get_by_label("input")).to_contain_text('"values"')
    _shot(page, "admin-task-execution-drawer")
    page.keyboard.press("Escape")
    expect(detail).to_be_hidden()

    # the team's executions, and the agent deleted from its page
    page.get_by_role("link", name="Agents").first.click()
    page.get_by_role("tab", name="Task executions").click()
    expect(
        page.get_by_role("table", name="task executions").get_by_text("COMPLETED")
    ).to_be_visible()
    page.get_by_role("tab", name="Agents").click()
    page.get_by_role("link", name="nightly").click()
    page.get_by_role("button", name="Delete").first.click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No agents yet")).to_be_visible()
    assert console.api().get("/v1/agents").json()["total"] == 0


def test_usage_shows_the_cost_of_an_llm_call(console: Console) -> None:
    page = console.open("/usage")
    expect(page.get_by_text("No LLM calls in this range")).to_be_visible()
    api = console.api()
    answer = api.post(
        "/v1/chat/completions",
        json={"model": "openai:gpt-4o", "messages": [{"role": "user", "content": "hello"}]},
    )
    assert answer.status_code == 200, answer.text
    rows = api.get("/v1/usage", params={"group_by": "model"}).json()["items"]
    assert [r["model"] for r in rows] == ["gpt-4o"]
    cost = rows[0]["cost"]
    assert Decimal(cost) > 0

    page.get_by_role("button", name="Refresh").click()
    table = page.get_by_role("table", name="usage per model")
    row = table.get_by_role("row").filter(has_text="gpt-4o")
    expect(row).to_contain_text(cost)
    expect(row.get_by_role("cell").nth(1)).to_have_text("1")
    total = page.get_by_test_id("total-cost")
    expect(total).not_to_have_text(re.compile(r"^0(\.0+)?$"))
    assert Decimal(total.inner_text().replace(",", "")) > 0
    # both charts drew a bar for the day of the call, the range's other days at zero
    for name in ("tokens per model per day", "cost per model per day"):
        chart = page.get_by_label(name)
        drawn = chart.locator(".recharts-bar-rectangle path").filter(visible=True)
        expect(drawn).to_have_count(1)  # one model, one day with calls, of 30

    _shot(page, "admin-usage-charts")

    # a range without the call: nothing to show
    page.get_by_label("From").fill("2020-01-01")
    page.get_by_label("To (inclusive)").fill("2020-01-31")
    expect(page.get_by_text("No LLM calls in this range")).to_be_visible()

    # the model's price is listed, and a team price can be set
    page.get_by_role("tab", name="Model prices").click()
    page.get_by_role("textbox", name="search models").fill("openai:gpt-4o-mini")
    models = page.get_by_role("table", name="models")
    expect(models.get_by_role("row")).to_have_count(2)
    models.get_by_role("button", name="Set price").click()
    form = page.get_by_role("dialog")
    form.get_by_role("textbox", name="input").fill("abc")
    console.allow(BAD_REQUEST)
    form.get_by_role("button", name="Save price").click()
    expect(form.get_by_text("'abc' is not a decimal number")).to_be_visible()
    form.get_by_role("textbox", name="input").fill("3")
    form.get_by_role("button", name="Save price").click()
    expect(models.get_by_text("team price")).to_be_visible()
    listed = {m["id"]: m for m in api.get("/v1/models").json()["data"]}
    assert listed["openai:gpt-4o-mini"]["linqra"]["override"] is True
    assert Decimal(listed["openai:gpt-4o-mini"]["linqra"]["price_per_million"]["input"]) == 3
    # a provider without a key says the local model answers for it, one with a key does not
    fallback = models.get_by_text("no key: the local model answers")
    expect(fallback).to_have_count(0)
    assert listed["gemini:gemini-2.5-pro"]["linqra"]["local_fallback"] is True
    page.get_by_role("textbox", name="search models").fill("gemini:gemini-2.5-pro")
    expect(fallback).to_have_count(1)


def test_budget_form_and_its_field_error(console: Console) -> None:
    console.allow(BAD_REQUEST)
    page = console.open("/usage/budget")
    expect(page.get_by_text("No budget", exact=True)).to_be_visible()
    amount = page.get_by_role("textbox", name="Amount")
    amount.fill("lots")
    page.get_by_role("button", name="Save budget").click()
    expect(page.get_by_text('amount must be a decimal number, e.g. "25.00"')).to_be_visible()
    expect(amount).to_have_attribute("aria-invalid", "true")
    assert console.api().get("/v1/budget").json()["budget"] is None

    amount.fill("25.00")
    _pick(page, "Period", "per day")
    page.get_by_role("button", name="Save budget").click()
    status = page.get_by_test_id("budget-status")
    expect(status).to_contain_text("25.00")
    expect(status).to_contain_text("per day")
    expect(page.get_by_test_id("budget-remaining")).to_have_text("25.00")
    expect(amount).not_to_have_attribute("aria-invalid", "true")
    stored = console.api().get("/v1/budget").json()
    assert stored["budget"]["amount"] == "25.00" and stored["budget"]["period"] == "day"

    page.get_by_role("button", name="Remove budget").click()
    expect(page.get_by_text("No budget", exact=True)).to_be_visible()
    assert console.api().get("/v1/budget").json()["budget"] is None


def test_api_key_shown_once_listed_then_deleted(console: Console) -> None:
    console.allow(BAD_REQUEST)
    page = console.open("/settings")
    expect(page.get_by_text("No API keys")).to_be_visible()
    page.get_by_role("button", name="New API key").click()
    form = page.get_by_role("dialog", name="New API key")
    form.get_by_role("button", name="Create key").click()  # no name: the API's word under it
    expect(form.get_by_text("name: String should have at least 1 character")).to_be_visible()
    form.get_by_role("textbox", name="Name").fill("ci-bot")
    form.get_by_role("button", name="Create key").click()

    shown = page.get_by_role("dialog", name="Key ci-bot")
    secret = shown.get_by_test_id("issued-key")
    expect(secret).to_have_value(re.compile(r"^lq_\w+"))
    key = secret.input_value()
    expect(shown.get_by_role("button", name="Copy")).to_be_visible()
    listed = console.api().get("/v1/api-keys").json()["items"]
    assert len(listed) == 1 and key.startswith(listed[0]["prefix"])
    assert key not in str(listed)  # the list never holds the secret
    shown.get_by_role("button", name="I have copied it").click()
    expect(shown).to_be_hidden()

    keys = page.get_by_role("table", name="api keys")
    row = keys.get_by_role("row").filter(has_text="ci-bot")
    expect(row).to_contain_text(listed[0]["prefix"])
    assert key not in page.content()  # shown once: gone with its dialog
    page.reload()
    expect(row).to_be_visible()
    assert key not in page.content()

    # rotated: a new secret, shown once again
    row.get_by_role("button", name="Rotate").click()
    page.get_by_role("dialog").get_by_role("button", name="Rotate").click()
    rotated = page.get_by_role("dialog", name="Key ci-bot").get_by_test_id("issued-key")
    expect(rotated).to_have_value(re.compile(r"^lq_\w+"))
    assert rotated.input_value() != key
    page.get_by_role("button", name="I have copied it").click()
    expect(rotated).to_be_hidden()

    row.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(row.get_by_text("revoked")).to_be_visible()
    expect(row.get_by_role("button", name="Delete")).to_have_count(0)
    assert console.api().get("/v1/api-keys").json()["items"][0]["revoked_at"]

    # what was done is in the audit log
    page.get_by_role("tab", name="Audit log").click()
    audit = page.get_by_role("table", name="audit events")
    expect(audit.get_by_text("api_key.create")).to_be_visible()


def test_webhooks_provider_keys_members_and_pages(console: Console) -> None:
    console.allow(BAD_REQUEST)
    api = console.api()
    page = console.open("/agents/hooks")
    expect(page.get_by_text("No webhooks")).to_be_visible()
    page.get_by_role("button", name="New webhook").click()
    form = page.get_by_role("dialog", name="New webhook")
    form.get_by_role("textbox", name="Topic").fill("orders")
    form.get_by_role("button", name="Create webhook").click()
    created = page.get_by_role("dialog", name="Webhook created")
    expect(created.get_by_role("textbox", name="Secret")).not_to_have_value("")
    secret = created.get_by_role("textbox", name="Secret").input_value()
    expect(created.get_by_role("textbox", name="URL")).to_have_value(re.compile(r"/v1/hooks/"))
    created.get_by_role("button", name="Done").click()
    expect(page.get_by_role("table", name="webhooks")).to_contain_text("orders")
    assert [h["topic"] for h in api.get("/v1/hooks").json()["items"]] == ["orders"]
    assert secret not in page.content()

    page.get_by_role("tab", name="Dead letters").click()
    expect(page.get_by_text("No dead letters")).to_be_visible()

    # a provider key: stored, never shown back (its last four only)
    page = console.open("/settings/secrets")
    expect(page.get_by_text("No provider keys")).to_be_visible()
    page.get_by_role("textbox", name="Provider").fill("openai")
    key_input = page.get_by_label("API key")
    key_input.fill("short")
    page.get_by_role("button", name="Save key").click()
    expect(page.get_by_text("value: String should have at least 8 characters")).to_be_visible()
    value = "sk-test-" + "k" * 28 + "wxyz"
    key_input.fill(value)
    page.get_by_role("button", name="Save key").click()
    table = page.get_by_role("table", name="provider keys")
    expect(table).to_contain_text("…wxyz")
    expect(key_input).to_have_value("")
    assert value not in page.content()
    assert api.get("/v1/secrets").json()["items"][0]["last4"] == "wxyz"

    # a member added by user id
    page.get_by_role("tab", name="Members").click()
    expect(page.get_by_text("No members recorded")).to_be_visible()
    page.get_by_role("button", name="Add member").click()
    member = page.get_by_role("dialog", name="Add member")
    member.get_by_role("textbox", name="User id").fill("user-7")
    _pick(page, "Role", "viewer")
    member.get_by_role("button", name="Save").click()
    expect(page.get_by_role("table", name="members")).to_contain_text("user-7")
    assert [(m["user_id"], m["role"]) for m in api.get("/v1/members").json()["items"]] == [
        ("user-7", "viewer")
    ]

    # lists are paged: 25 keys are 20 and 5
    for i in range(25):
        assert api.post("/v1/api-keys", json={"name": f"k{i:02d}"}).status_code == 201
    page.get_by_role("tab", name="API keys").click()
    rows = page.get_by_role("table", name="api keys").get_by_role("row")
    expect(rows).to_have_count(21)  # with the header row
    page.get_by_role("button", name="page 2", exact=True).click()
    expect(rows).to_have_count(6)
