"""Team budgets: an amount per day or month, reserved before each call and settled after.

Before a call, a pessimistic estimate (the prompt counted locally plus 20%, the whole
``max_tokens`` — or 4,096 — of output, at the model's highest rates) is *reserved* on the team's
ledger for the current period; a call that would take spent + reserved past the budget is
refused with :class:`~linqra.errors.BudgetExceeded` (402) before any token is bought. After the
call the reservation is released and the exact cost is added to ``spent``.

The ledger is one document per team and period, changed only by compare-and-set on its
``version``: concurrent calls in any number of processes cannot overspend. Amounts are integer
nano-units of the currency (10⁻⁹), so sums are exact.

A budget ``amount`` is decimal text from 0 to ``MAX_BUDGET_AMOUNT`` (10¹²); anything else
(``NaN``, ``Infinity``, ``1e999999``, a negative number) is refused with a 400 on ``amount``
before anything is stored. A stored amount that is not valid (written before this check)
is reported by :meth:`BudgetService.status` (``"invalid": true``) and refuses priced calls with
402 ``budget_invalid`` until the budget is set again; it never answers 500.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any, Literal

from linqra.clock import iso, utcnow
from linqra.errors import BudgetExceeded, Conflict, StoreError, ValidationError
from linqra.llm.pricing import Catalogue, Price
from linqra.llm.tokens import count_prompt
from linqra.llm.types import Message, ModelSettings
from linqra.store import DocumentStore, get_scoped, scoped_id

__all__ = ["MAX_BUDGET_AMOUNT", "BudgetService", "Reservation", "parse_amount", "to_nanos"]

BUDGETS = "budgets"
LEDGERS = "budget_ledgers"
NANO = Decimal("0.000000001")
DEFAULT_OUTPUT_ESTIMATE = 4096
MAX_CAS_TRIES = 50
MAX_BUDGET_AMOUNT = Decimal(10) ** 12


def to_nanos(amount: Decimal) -> int:
    return int((amount / NANO).to_integral_value(rounding=ROUND_CEILING))


def parse_amount(amount: object) -> Decimal:
    """A budget amount from decimal text; :class:`ValidationError` on ``amount`` if it is not a
    finite number from 0 to :data:`MAX_BUDGET_AMOUNT`."""
    if isinstance(amount, bool) or not isinstance(amount, str | int | Decimal):
        raise ValidationError('amount must be decimal text, e.g. "25.00"', field="amount")
    text = str(amount).strip()
    if len(text) > 64:
        raise ValidationError("amount must be at most 64 characters", field="amount")
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise ValidationError(
            'amount must be a decimal number, e.g. "25.00"', field="amount"
        ) from None
    if not value.is_finite() or not 0 <= value <= MAX_BUDGET_AMOUNT:
        raise ValidationError(
            f"amount must be a number from 0 to {MAX_BUDGET_AMOUNT:,.0f}", field="amount"
        )
    return value


def _stored_limit(budget: dict[str, Any]) -> int | None:
    """The stored budget in nano-units, or None if the stored amount is not valid."""
    try:
        return to_nanos(parse_amount(budget.get("amount")))
    except (ValidationError, ArithmeticError):
        return None


def from_nanos(nanos: int) -> str:
    return str((Decimal(nanos) * NANO).normalize()) if nanos else "0"


@dataclass(frozen=True, slots=True)
class Reservation:
    team_id: str
    ledger_id: str
    nanos: int
    also: Reservation | None = None
    """a widget key's own spend cap, reserved and settled with the team's budget"""


KEY_BUDGET = "budget:key:"
"""A widget key's spend cap is a budget of its team's with the id ``budget:key:<key id>``."""


class BudgetService:
    def __init__(self, store: DocumentStore, catalogue: Catalogue) -> None:
        self.store = store
        self.catalogue = catalogue

    # -- configuration ------------------------------------------------------------------
    async def set(
        self,
        team_id: str,
        amount: str,
        period: Literal["day", "month"],
        *,
        budget_id: str = "budget",
    ) -> dict[str, Any]:
        value = parse_amount(amount)
        if period not in ("day", "month"):
            raise ValidationError("period must be day or month", field="period")
        doc = {
            "amount": str(value),
            "period": period,
            "currency": self.catalogue.currency,
            "updated_at": iso(),
        }
        stored = scoped_id(team_id, budget_id)
        if not await self.store.update(BUDGETS, team_id, stored, doc):
            try:
                await self.store.insert(BUDGETS, team_id, {"id": stored, **doc})
            except Conflict:
                await self.store.update(BUDGETS, team_id, stored, doc)
        await self.store.delete(BUDGETS, team_id, budget_id)  # written before ids were per team
        return await self.status(team_id, budget_id=budget_id)

    async def clear(self, team_id: str, *, budget_id: str = "budget") -> None:
        await self.store.delete(BUDGETS, team_id, scoped_id(team_id, budget_id))
        await self.store.delete(BUDGETS, team_id, budget_id)

    async def _budget(self, team_id: str, budget_id: str) -> dict[str, Any] | None:
        return await get_scoped(self.store, BUDGETS, team_id, budget_id)

    async def status(self, team_id: str, *, budget_id: str = "budget") -> dict[str, Any]:
        budget = await self._budget(team_id, budget_id)
        if budget is None:
            return {"budget": None}
        shown = {
            "amount": str(budget.get("amount")),
            "period": budget.get("period"),
            "currency": budget.get("currency"),
        }
        limit = _stored_limit(budget)
        if limit is None or budget.get("period") not in ("day", "month"):
            return {
                "budget": {**shown, "invalid": True},
                "error": "the stored budget is not valid: set it again with PUT /v1/budget "
                "(priced calls are refused until then)",
            }
        ledger = await self._ledger(team_id, self._period_key(budget["period"]), budget_id)
        return {
            "budget": shown,
            "period": self._period_key(budget["period"]),
            "spent": from_nanos(ledger["spent_nanos"]),
            "reserved": from_nanos(ledger["reserved_nanos"]),
            "remaining": from_nanos(
                max(limit - ledger["spent_nanos"] - ledger["reserved_nanos"], 0)
            ),
        }

    # -- reserve and settle ---------------------------------------------------------------
    def estimate(
        self, price: Price | None, messages: list[Message], settings: ModelSettings
    ) -> Decimal:
        """A pessimistic cost: prompt * 1.2 and the full output allowance at the highest rates."""
        if price is None:
            return Decimal(0)
        prompt = math.ceil(count_prompt(messages, settings.tools) * 1.2)
        output = settings.max_tokens or DEFAULT_OUTPUT_ESTIMATE
        rates = _highest(price)
        return (prompt * max(rates[0], rates[1]) + output * rates[2]) / Decimal(1_000_000)

    async def reserve(
        self, team_id: str, estimate: Decimal, *, key_id: str | None = None
    ) -> Reservation | None:
        """Reserve ``estimate`` on the team's budget and, for a call a widget key started, on
        the key's own spend cap (``key_id``); :class:`BudgetExceeded` when either would be
        exceeded (nothing stays reserved then)."""
        team = await self._reserve(team_id, estimate, "budget")
        if key_id is None:
            return team
        try:
            key = await self._reserve(team_id, estimate, KEY_BUDGET + key_id)
        except BaseException:
            await self.settle(team, Decimal(0))
            raise
        if team is None:
            return key
        return Reservation(team.team_id, team.ledger_id, team.nanos, also=key)

    async def _reserve(self, team_id: str, estimate: Decimal, budget_id: str) -> Reservation | None:
        budget = await self._budget(team_id, budget_id)
        if budget is None:
            return None
        whose, field = (
            ("team budget", "budget")
            if budget_id == "budget"
            else ("widget key's spend cap", "spend_cap")
        )
        limit = _stored_limit(budget)
        if limit is None or budget.get("period") not in ("day", "month"):
            if estimate <= 0:  # a free call spends nothing, whatever the budget says
                return None
            refused = BudgetExceeded(
                "the team's stored budget is not valid; set it again with PUT /v1/budget",
                field=field,
            )
            refused.code = "budget_invalid"
            raise refused
        key = self._period_key(budget["period"])
        want = to_nanos(estimate)
        for _ in range(MAX_CAS_TRIES):
            ledger = await self._ledger(team_id, key, budget_id)
            committed = ledger["spent_nanos"] + ledger["reserved_nanos"]
            if committed + want > limit:
                raise BudgetExceeded(
                    f"{whose} of {budget['amount']} {budget['currency']} per {budget['period']} would be "
                    f"exceeded: spent {from_nanos(ledger['spent_nanos'])}, reserved "
                    f"{from_nanos(ledger['reserved_nanos'])}, this call may cost up to {from_nanos(want)}",
                    field=field,
                )
            if await self._cas(team_id, ledger, reserved=ledger["reserved_nanos"] + want):
                return Reservation(team_id, ledger["id"], want)
        raise StoreError("budget ledger is too contended; try again")

    async def settle(self, reservation: Reservation | None, actual: Decimal) -> None:
        """Release the reservation and add the exact cost (also for failed or cancelled calls)."""
        if reservation is None:
            return
        if reservation.also is not None:
            await self.settle(reservation.also, actual)
        spend = to_nanos(actual)
        for _ in range(MAX_CAS_TRIES):
            ledger = await self.store.get(LEDGERS, reservation.team_id, reservation.ledger_id)
            if ledger is None:
                return
            if await self._cas(
                reservation.team_id,
                ledger,
                reserved=max(ledger["reserved_nanos"] - reservation.nanos, 0),
                spent=ledger["spent_nanos"] + spend,
            ):
                return
        raise StoreError("budget ledger is too contended; the settlement was not recorded")

    # -- internals --------------------------------------------------------------------------
    @staticmethod
    def _period_key(period: str) -> str:
        now = utcnow()
        return now.strftime("%Y-%m-%d") if period == "day" else now.strftime("%Y-%m")

    async def _ledger(self, team_id: str, key: str, budget_id: str = "budget") -> dict[str, Any]:
        name = f"ledger:{key}" if budget_id == "budget" else f"ledger:{budget_id}:{key}"
        ledger_id = scoped_id(team_id, name)
        ledger = await self.store.get(LEDGERS, team_id, ledger_id)
        ledger = ledger or await self.store.get(
            LEDGERS, team_id, name
        )  # written before ids were per team
        if ledger is None:
            fresh = {
                "id": ledger_id,
                "period": key,
                "spent_nanos": 0,
                "reserved_nanos": 0,
                "version": 0,
            }
            with contextlib.suppress(Conflict):  # another caller may create it first
                await self.store.insert(LEDGERS, team_id, fresh)
            ledger = await self.store.get(LEDGERS, team_id, ledger_id)
            assert ledger is not None
        return ledger

    async def _cas(
        self, team_id: str, ledger: dict[str, Any], *, reserved: int, spent: int | None = None
    ) -> bool:
        changes: dict[str, Any] = {"reserved_nanos": reserved, "version": ledger["version"] + 1}
        if spent is not None:
            changes["spent_nanos"] = spent
        return await self.store.update(
            LEDGERS, team_id, ledger["id"], changes, where={"version": ledger["version"]}
        )


def _highest(price: Price) -> tuple[Decimal, Decimal, Decimal]:
    tiers = [price.rates] + ([price.long_context] if price.long_context else [])
    return (
        max(t.input for t in tiers),
        max(t.cache_write for t in tiers),
        max(max(t.output, t.reasoning) for t in tiers),
    )
