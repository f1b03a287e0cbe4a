"""A team's alert rules and what became of them: the rules, their state, their history of firing
and resolved transitions, and the deliveries of each notification.

Four collections, every record team-scoped: ``alert_rules`` (the definitions, versioned),
``alert_states`` (one per evaluated rule, the evaluator's own; id = the rule's id),
``alert_events`` (the history) and ``alert_deliveries`` (one per notification and channel, with
its attempts). The evaluator (:mod:`linqra.alerts.evaluator`) writes the last three.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from linqra._config_alerts import AlertSettings
from linqra.alerts.checks import check_rule
from linqra.alerts.models import AlertRule, Evaluation, FiringAlert, SignalInfo
from linqra.alerts.secrets import AlertSecrets
from linqra.alerts.signals import SIGNALS, Reading, Span
from linqra.alerts.state import advance, breaches
from linqra.clock import iso, new_id, utcnow
from linqra.errors import Conflict, NotFound, ValidationError
from linqra.store import Document, DocumentStore, IndexSpec
from linqra.workflows.service import WORKFLOWS

__all__ = [
    "ALERT_DELIVERIES",
    "ALERT_EVENTS",
    "ALERT_RULES",
    "ALERT_STATES",
    "INDEXES",
    "AlertRules",
    "read_signal",
]

ALERT_RULES = "alert_rules"
ALERT_STATES = "alert_states"
ALERT_EVENTS = "alert_events"
ALERT_DELIVERIES = "alert_deliveries"
INDEXES = [
    IndexSpec(ALERT_RULES, ("name",), unique=True),
    IndexSpec(ALERT_RULES, ("created_at",)),
    IndexSpec(ALERT_STATES, ("state",)),
    IndexSpec(ALERT_EVENTS, ("rule_id", "at")),
    IndexSpec(ALERT_DELIVERIES, ("rule_id", "created_at")),
    IndexSpec(ALERT_DELIVERIES, ("status", "next_attempt_at")),
]
_STATE_FIELDS = (
    "state", "since", "last_value", "last_evaluated_at", "last_error",
    "pending_since", "firing_since", "clear_since",
)  # fmt: skip


async def read_signal(
    store: DocumentStore, team_id: str, rule: Mapping[str, Any], now: datetime
) -> tuple[Reading, Span]:
    """The rule's signal over its window ending at ``now``, computed in the store."""
    signal = SIGNALS[rule["signal"]]
    span = Span.ending(now, int(rule["window_seconds"]))
    return await signal.measure(store, team_id, rule["params"], span), span


def number(value: Any) -> float | None:
    return None if value is None else float(value)


class AlertRules:
    """The rules of every team; each call names the team. ``clock``: the instant of a dry run."""

    def __init__(
        self,
        store: DocumentStore,
        secrets: AlertSecrets,
        settings: AlertSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.secrets = secrets
        self.settings = settings
        self.clock = clock
        self._ready = False

    async def init(self) -> None:
        if not self._ready:
            await self.store.ensure_indexes(INDEXES)
            self._ready = True

    @staticmethod
    def signals() -> list[SignalInfo]:
        return [
            SignalInfo(
                name=s.name, description=s.description, unit=s.unit, windowed=s.windowed,
                params={n: p.description for n, p in s.params.items()},
            )
            for s in SIGNALS.values()
        ]  # fmt: skip

    async def _checked(self, team_id: str, body: Any) -> dict[str, Any]:
        async def secret_exists(name: str) -> bool:
            return await self.secrets.exists(team_id, name)

        async def workflow_exists(workflow_id: str) -> bool:
            doc = await self.store.get(WORKFLOWS, team_id, workflow_id)
            return doc is not None and not doc.get("deleted_at")

        return await check_rule(
            body, self.settings, secret_exists=secret_exists, workflow_exists=workflow_exists
        )

    async def create(self, team_id: str, body: Any) -> AlertRule:
        await self.init()
        fields = await self._checked(team_id, body)
        if await self.store.count(ALERT_RULES, team_id) >= self.settings.max_rules_per_team:
            raise ValidationError(
                f"a team has at most {self.settings.max_rules_per_team} alert rules "
                "(alerts.max_rules_per_team)",
                field="name",
            )
        now = iso()
        doc = {"id": new_id("al"), **fields, "version": 1, "created_at": now, "updated_at": now}
        try:
            await self.store.insert(ALERT_RULES, team_id, doc)
        except Conflict:
            raise Conflict(f"the team has a rule named {fields['name']!r}", field="name") from None
        return AlertRule.model_validate(doc)

    async def rule(self, team_id: str, rule_id: str) -> Document:
        doc = await self.store.get(ALERT_RULES, team_id, rule_id)
        if doc is None:
            raise NotFound(f"alert rule {rule_id!r} not found", field="rule_id")
        return doc

    async def get(self, team_id: str, rule_id: str) -> AlertRule:
        doc = await self.rule(team_id, rule_id)
        state = await self.store.get(ALERT_STATES, team_id, rule_id)
        return _with_state(doc, state)

    async def page(
        self, team_id: str, *, enabled: bool | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[AlertRule], int]:
        await self.init()
        where: dict[str, Any] = {} if enabled is None else {"enabled": enabled}
        docs = await self.store.find(
            ALERT_RULES, team_id, where, sort=[("created_at", -1)], limit=limit, skip=offset
        )
        total = await self.store.count(ALERT_RULES, team_id, where)
        ids = [d["id"] for d in docs]
        states = {
            s["id"]: s
            for s in await self.store.find(
                ALERT_STATES, team_id, {"id": {"$in": ids}}, limit=len(ids) or 1
            )
        }
        return [_with_state(d, states.get(d["id"])) for d in docs], total

    async def update(
        self, team_id: str, rule_id: str, body: Any, *, expected_version: int | None = None
    ) -> AlertRule:
        """Replace the rule's definition (its state and history stay); with
        ``expected_version`` only if that is still its version (409 else)."""
        current = await self.rule(team_id, rule_id)
        fields = await self._checked(team_id, body)
        version = int(current["version"])
        if expected_version is not None and expected_version != version:
            raise Conflict(
                f"the rule is at version {version}, not {expected_version}", field="If-Match"
            )
        changes = {**fields, "version": version + 1, "updated_at": iso()}
        try:
            done = await self.store.update(
                ALERT_RULES, team_id, rule_id, changes, where={"version": version}
            )
        except Conflict:
            raise Conflict(f"the team has a rule named {fields['name']!r}", field="name") from None
        if not done:
            raise Conflict("the rule changed meanwhile; read it and try again", field="If-Match")
        return await self.get(team_id, rule_id)

    async def delete(self, team_id: str, rule_id: str) -> None:
        """Delete the rule. If it is firing, the evaluator resolves it on its next tick
        (``reason: deleted``, notified to the channels it had) and then forgets its state."""
        await self.rule(team_id, rule_id)
        await self.store.delete(ALERT_RULES, team_id, rule_id)
        state = await self.store.get(ALERT_STATES, team_id, rule_id)
        if state is not None and state.get("state") != "firing":
            with contextlib.suppress(NotFound):
                await self.store.delete(ALERT_STATES, team_id, rule_id)

    async def delete_secret(self, team_id: str, name: str) -> None:
        """Forget the team's alert secret ``name``: 409 while a rule's channel names it."""
        rules = await self.store.find(ALERT_RULES, team_id, limit=10_000)
        for rule in rules:
            for i, channel in enumerate(rule.get("channels") or []):
                if channel.get("type") == "webhook" and channel.get("secret") == name:
                    raise Conflict(
                        f"alert rule {rule['id']} ({rule['name']!r}) signs channel {i} with "
                        f"{name!r}: change the rule first",
                        field="name",
                    )
        await self.secrets.delete(team_id, name)

    async def history(
        self, team_id: str, rule_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[Document], int]:
        """The rule's firing and resolved events, newest first."""
        await self.rule(team_id, rule_id)
        where = {"rule_id": rule_id}
        docs = await self.store.find(
            ALERT_EVENTS, team_id, where, sort=[("at", -1), ("id", -1)], limit=limit, skip=offset
        )
        return docs, await self.store.count(ALERT_EVENTS, team_id, where)

    async def deliveries(
        self,
        team_id: str,
        rule_id: str,
        *,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Document], int]:
        """The rule's notifications, newest first (``status``: only those)."""
        await self.rule(team_id, rule_id)
        where: dict[str, Any] = {"rule_id": rule_id}
        if status is not None:
            where["status"] = status
        docs = await self.store.find(
            ALERT_DELIVERIES, team_id, where, sort=[("created_at", -1), ("id", -1)],
            limit=limit, skip=offset,
        )  # fmt: skip
        return docs, await self.store.count(ALERT_DELIVERIES, team_id, where)

    async def firing(self, team_id: str) -> list[FiringAlert]:
        """The team's rules firing now, the longest-firing first."""
        await self.init()
        states = await self.store.find(
            ALERT_STATES, team_id, {"state": "firing"}, sort=[("firing_since", 1)], limit=1000
        )
        rules = {
            r["id"]: r
            for r in await self.store.find(
                ALERT_RULES, team_id, {"id": {"$in": [s["id"] for s in states]}},
                limit=len(states) or 1,
            )
        }  # fmt: skip
        alerts = []
        for state in states:
            rule = rules.get(state["id"])
            if rule is None:  # deleted: resolved on the evaluator's next tick
                continue
            alerts.append(
                FiringAlert(
                    rule_id=rule["id"], name=rule["name"], severity=rule["severity"],
                    signal=rule["signal"], value=state.get("last_value"),
                    threshold=rule["threshold"], comparison=rule["comparison"],
                    firing_since=state["firing_since"], event_id=state.get("event_id"),
                    labels=rule.get("labels") or {},
                )
            )  # fmt: skip
        return alerts

    async def evaluate(self, team_id: str, rule_id: str) -> Evaluation:
        """A dry run: the signal now and the state an evaluation would move the rule to;
        nothing is written, nothing is sent."""
        rule = await self.rule(team_id, rule_id)
        now = self.clock()
        reading, span = await read_signal(self.store, team_id, rule, now)
        breach = breaches(reading.value, rule["comparison"], rule["threshold"])
        state = await self.store.get(ALERT_STATES, team_id, rule_id)
        moved = advance(
            state, breach, now,
            for_seconds=int(rule["for_seconds"]),
            keep_firing_for_seconds=int(rule["keep_firing_for_seconds"]),
        )  # fmt: skip
        windowed = SIGNALS[rule["signal"]].windowed
        return Evaluation(
            rule_id=rule_id, signal=rule["signal"], value=number(reading.value),
            exact=None if reading.value is None else str(reading.value), breach=breach,
            threshold=rule["threshold"], comparison=rule["comparison"],
            window_from=span.start if windowed else None, window_to=span.end,
            state=(state or {}).get("state", "inactive"), next_state=moved.state,
            detail=reading.detail,
        )  # fmt: skip


def _with_state(doc: Mapping[str, Any], state: Mapping[str, Any] | None) -> AlertRule:
    view = dict(doc)
    view.pop("team_id", None)
    if state is not None:
        view["state"] = {k: state.get(k) for k in _STATE_FIELDS if state.get(k) is not None}
    return AlertRule.model_validate(view)
