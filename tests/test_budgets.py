"""Team budgets: reserved before each call, settled after, never overspent under concurrency."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from deployments.app import create_app
from linqra.config import Settings
from linqra.errors import BudgetExceeded, ValidationError
from linqra.llm.types import Message, ModelSettings
from linqra.system import System

ASK = [Message("user", "count the cost of this question")]


async def test_reserve_then_settle_exactly(system: System) -> None:
    budgets = system.llm.budgets
    await budgets.set("team-a", "1.00", "month")
    reservation = await budgets.reserve("team-a", Decimal("0.25"))
    status = await budgets.status("team-a")
    assert status["reserved"] == "0.25" and status["remaining"] == "0.75"
    await budgets.settle(reservation, Decimal("0.0000123"))
    status = await budgets.status("team-a")
    assert status["reserved"] == "0" and status["spent"] == "0.0000123"
    assert Decimal(status["remaining"]) == Decimal("1.00") - Decimal("0.0000123")
    assert (await budgets.status("team-b"))["budget"] is None  # budgets are per team


async def test_each_team_has_its_own_budget_ledger_and_prices(system: System) -> None:
    """Names each team uses once (its budget, a day's ledger, its price for a model) are
    stored under ids of the team's own: a second team's are not refused, lost or shared."""
    budgets, prices = system.llm.budgets, system.llm.overrides
    for team, amount in (("team-a", "1.00"), ("team-b", "2.00")):
        await budgets.set(team, amount, "day")
        reservation = await budgets.reserve(team, Decimal("0.10"))
        await budgets.settle(reservation, Decimal("0.05"))
    a, b = await budgets.status("team-a"), await budgets.status("team-b")
    assert (a["budget"]["amount"], a["spent"]) == ("1.00", "0.05")
    assert (b["budget"]["amount"], b["spent"]) == ("2.00", "0.05")
    await budgets.clear("team-a")
    assert (await budgets.status("team-a"))["budget"] is None
    assert (await budgets.status("team-b"))["budget"]["amount"] == "2.00"

    await prices.set("team-a", "openai:gpt-4o", {"input": "1", "output": "2"})
    await prices.set("team-b", "openai:gpt-4o", {"input": "3", "output": "4"})
    got = {t: (await prices.effective(t, "openai", "gpt-4o"))[0] for t in ("team-a", "team-b")}
    assert (got["team-a"].rates.input, got["team-b"].rates.input) == (Decimal(1), Decimal(3))
    await prices.delete("team-a", "openai:gpt-4o")
    assert (await prices.effective("team-b", "openai", "gpt-4o"))[1].startswith("team:1@")


async def test_a_budget_and_a_price_stored_the_old_way_are_still_the_teams(
    system: System,
) -> None:
    """Written before their ids were per team (id = the name): read, spent, replaced, cleared."""
    store, budgets, prices = system.store, system.llm.budgets, system.llm.overrides
    old = {"amount": "1.00", "period": "day", "currency": "USD", "updated_at": "2026-12-01"}
    await store.insert("budgets", "team-old", {"id": "budget", **old})
    rates = {"input": "7", "output": "8"}
    await store.insert(
        "price_overrides",
        "team-old",
        {"id": "openai:gpt-4o", "rates": rates, "revision": 1, "updated_at": "2026-12-01"},
    )
    assert (await budgets.status("team-old"))["budget"]["amount"] == "1.00"
    reservation = await budgets.reserve("team-old", Decimal("0.40"))
    await budgets.settle(reservation, Decimal("0.40"))
    assert Decimal((await budgets.status("team-old"))["spent"]) == Decimal("0.40")
    price, version = await prices.effective("team-old", "openai", "gpt-4o")
    assert price is not None and price.rates.input == Decimal(7) and version.startswith("team:1@")
    await prices.set("team-old", "openai:gpt-4o", {"input": "9", "output": "9"})
    assert (await prices.effective("team-old", "openai", "gpt-4o"))[1].startswith("team:2@")
    await budgets.set("team-old", "2.00", "day")  # replaces the old document
    assert (await budgets.status("team-old"))["budget"]["amount"] == "2.00"
    await budgets.clear("team-old")
    assert (await budgets.status("team-old"))["budget"] is None
    await prices.delete("team-old", "openai:gpt-4o")
    assert (await prices.effective("team-old", "openai", "gpt-4o"))[1] != "team:2@"


async def test_concurrent_reservations_cannot_overspend(system: System) -> None:
    budgets = system.llm.budgets
    await budgets.set("team-c", "1.00", "day")
    results = await asyncio.gather(
        *(budgets.reserve("team-c", Decimal("0.30")) for _ in range(10)), return_exceptions=True
    )
    granted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert len(granted) == 3 and len(refused) == 7
    assert refused[0].status == 402 and "would be exceeded" in refused[0].message
    assert Decimal((await budgets.status("team-c"))["reserved"]) == Decimal("0.90")


async def test_calls_are_refused_before_they_run_and_settled_after(system: System) -> None:
    llm = system.llm
    await llm.budgets.set("team-d", "0.001", "month")
    # the local model is free: it always fits, and its zero cost is settled
    done = await llm.complete(
        "team-d", "local:local", ASK, ModelSettings(), caller={"type": "test"}
    )
    assert done.cost is not None and done.cost.amount == 0
    # a priced call that would not fit is refused before anything is sent, and reserves nothing
    estimate = llm.budgets.estimate(
        llm.catalogue.price("openai", "gpt-4o"), ASK, ModelSettings(max_tokens=1000)
    )
    assert estimate > Decimal("0.001")
    with pytest.raises(BudgetExceeded):
        await llm.budgets.reserve("team-d", estimate)
    assert (await llm.budgets.status("team-d"))["reserved"] == "0"


async def test_budget_input_is_validated(system: System) -> None:
    with pytest.raises(ValidationError) as err:
        await system.llm.budgets.set("team-a", "lots", "month")
    assert err.value.field == "amount"
    with pytest.raises(ValidationError):
        await system.llm.budgets.set("team-a", "-1", "month")


def test_budget_over_http_refuses_with_402(llm_settings: Settings) -> None:
    with TestClient(create_app(settings=llm_settings), headers={"X-Team-Id": "team-budget"}) as api:
        assert api.get("/v1/budget").json() == {"budget": None}
        assert (
            api.put("/v1/budget", json={"amount": "0.000001", "period": "day"}).status_code == 200
        )
        refused = api.post(
            "/v1/chat/completions",
            json={
                "model": "openai:gpt-4o",
                "messages": [{"role": "user", "content": "hello"}],
                "max_tokens": 500,
            },
        )
        assert refused.status_code == 402 and refused.json()["error"]["code"] == "budget_exceeded"
        streamed = api.post(
            "/v1/chat/completions",
            json={
                "model": "openai:gpt-4o",
                "messages": [{"role": "user", "content": "hello"}],
                "stream": True,
            },
        )
        assert streamed.status_code == 402
        assert api.put("/v1/budget", json={"amount": "5", "period": "day"}).status_code == 200
        ok = api.post(
            "/v1/chat/completions",
            json={
                "model": "openai:gpt-4o",
                "messages": [{"role": "user", "content": "hello"}],
                "max_tokens": 500,
            },
        )
        assert ok.status_code == 200
        status = api.get("/v1/budget").json()
        assert Decimal(status["spent"]) == Decimal(ok.json()["linqra"]["cost"]["amount"]) > 0
        assert status["reserved"] == "0"
        assert api.put("/v1/budget", json={"amount": "x"}).status_code == 400
        assert api.delete("/v1/budget").status_code == 204


def test_a_budget_amount_as_a_json_number(llm_settings: Settings) -> None:
    """A whole number is exact and taken; a fraction (a binary float) is refused with the form
    to use, naming the field."""
    with TestClient(create_app(settings=llm_settings), headers={"X-Team-Id": "team-number"}) as api:
        assert api.put("/v1/budget", json={"amount": 5}).status_code == 200
        assert Decimal(api.get("/v1/budget").json()["budget"]["amount"]) == 5
        for amount in (5.1, True, None, [5]):
            refused = api.put("/v1/budget", json={"amount": amount})
            error = refused.json()["error"]
            assert refused.status_code == 400 and error["field"] == "amount", refused.text
            assert 'amount must be decimal text, e.g. "25.00"' in error["message"], refused.text
