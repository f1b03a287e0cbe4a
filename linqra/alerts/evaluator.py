"""The evaluator: one :meth:`AlertEvaluator.tick` evaluates every enabled rule of every team, records
firing and resolved transitions, and sends (or retries) their notifications.

A tick at ``now`` (injected: tests pass instants, nothing here reads a clock but the default):

1. every enabled rule's signal is computed in the store (identical signals of a team once), and
   its state advanced (:mod:`linqra.alerts.state`); a state is written by compare-and-set on its
   ``version``, so two evaluators never both record one transition. A transition adds an event
   to the history and one pending delivery per channel of the rule; a newer transition
   supersedes the undelivered ones of the rule, so a receiver never gets a stale ``firing``
   after its ``resolved``. A rule that fails to evaluate keeps its state and records
   ``last_error``: the other rules go on.
2. a firing rule whose rule was deleted or disabled is resolved (``reason``: deleted, disabled).
3. every delivery due (new, or failed and due again) is claimed and sent, all at once, each
   within ``alerts.delivery_timeout_seconds``. A failure is recorded (``last_error``,
   ``response_status``) and retried after ``alerts.retry_seconds`` doubled per attempt (at most
   ``alerts.max_retry_seconds``), until ``alerts.max_delivery_attempts``: then it is ``failed``.
   A broken channel thus costs one bounded attempt per tick, never the evaluation of a rule.
4. a rule firing with an Alertmanager channel is posted again every ``alerts.resend_seconds``
   (a ``refresh`` delivery), as Alertmanager's clients must.

``actors/alerts.py`` ticks it every ``alerts.interval_seconds`` on a cluster; without Ray,
:meth:`AlertEvaluator.run_forever` does, and tests call :meth:`tick` with their own instants.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from linqra._config_alerts import AlertSettings
from linqra.alerts.channels import Channels
from linqra.alerts.rules import (
    ALERT_DELIVERIES,
    ALERT_EVENTS,
    ALERT_RULES,
    ALERT_STATES,
    INDEXES,
    number,
    read_signal,
)
from linqra.alerts.secrets import AlertSecrets
from linqra.alerts.signals import Reading
from linqra.alerts.state import Advance, advance, breaches
from linqra.clock import iso, new_id, parse_iso, utcnow
from linqra.config import EgressPolicy
from linqra.errors import Conflict
from linqra.events import EventBus
from linqra.store import Document, DocumentStore

if TYPE_CHECKING:
    from linqra.system import System

__all__ = ["MAX_DUE", "MAX_RULES", "AlertEvaluator", "TickReport"]

log = logging.getLogger(__name__)

MAX_RULES = 20_000
"""The most enabled rules one tick evaluates (every team's)."""
MAX_DUE = 1000
"""The most deliveries one tick sends."""
_CONCURRENCY = 16
_SNAPSHOT = ("name", "description", "severity", "signal", "params", "comparison", "threshold",
             "labels", "channels", "window")  # fmt: skip


@dataclass
class TickReport:
    """What one tick did."""

    evaluated: int = 0
    errors: int = 0
    fired: int = 0
    resolved: int = 0
    delivered: int = 0
    failed: int = 0


class AlertEvaluator:
    def __init__(
        self,
        store: DocumentStore,
        secrets: AlertSecrets,
        settings: AlertSettings,
        *,
        bus: Callable[[], EventBus],
        egress: EgressPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        channels: Channels | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.channels = channels or Channels(settings, secrets, bus, egress or EgressPolicy())
        self.ticks = 0
        self._ready = False

    @classmethod
    def of(cls, system: System, **kwargs: Any) -> AlertEvaluator:
        """The evaluator of a process's system (its store, keyring, bus and settings)."""
        secrets = AlertSecrets(system.store, system.secrets.keyring)
        return cls(
            system.store, secrets, system.settings.alerts,
            bus=system.bus, egress=system.settings.egress, **kwargs,
        )  # fmt: skip

    async def close(self) -> None:
        await self.channels.close()

    async def run_forever(self, interval: float | None = None) -> None:
        """Tick every ``interval`` seconds (default ``alerts.interval_seconds``)."""
        every = interval or self.settings.interval_seconds
        while True:
            try:
                await self.tick()
            except Exception:
                log.warning("alert evaluation failed", exc_info=True)
            await asyncio.sleep(every)

    async def tick(self, now: datetime | None = None) -> TickReport:
        now = now or self.clock()
        if not self._ready:
            await self.store.ensure_indexes(INDEXES)
            self._ready = True
        report = TickReport()
        rules = await self.store.scan_all_teams(ALERT_RULES, {"enabled": True}, limit=MAX_RULES)
        if len(rules) == MAX_RULES:
            log.warning("alert rules: evaluating the first %s enabled rules only", MAX_RULES)
        known = await self.store.scan_all_teams(ALERT_STATES, {}, limit=2 * MAX_RULES)
        states = {(s["team_id"], s["id"]): s for s in known}
        readings: dict[tuple[str, ...], asyncio.Task[tuple[Reading, Any]]] = {}
        gate = asyncio.Semaphore(_CONCURRENCY)
        await asyncio.gather(
            *(self._evaluate(r, states, readings, gate, now, report) for r in rules)
        )
        report.evaluated = len(rules)
        enabled = {(r["team_id"], r["id"]) for r in rules}
        for key, state in states.items():
            if key not in enabled and state.get("state") in ("pending", "firing"):
                await self._retire(state, now, report)
        await self._deliver_due(now, report)
        self.ticks += 1
        return report

    # -- evaluation ---------------------------------------------------------------------
    async def _evaluate(
        self,
        rule: Document,
        states: Mapping[tuple[str, str], Document],
        readings: dict[tuple[str, ...], asyncio.Task[tuple[Reading, Any]]],
        gate: asyncio.Semaphore,
        now: datetime,
        report: TickReport,
    ) -> None:
        team = rule["team_id"]
        state = states.get((team, rule["id"]))
        try:
            key = (team, rule["signal"], json.dumps(rule["params"], sort_keys=True),
                   str(rule["window_seconds"]))  # fmt: skip
            if key not in readings:
                readings[key] = asyncio.ensure_future(self._read(gate, team, rule, now))
            reading, _ = await asyncio.shield(readings[key])
        except Exception as exc:
            report.errors += 1
            log.warning("alert rule %s of team %s: %s", rule["id"], team, exc)
            await self._write_state(rule, state, {"last_error": _error(exc)}, now)
            return
        breach = breaches(reading.value, rule["comparison"], rule["threshold"])
        moved = advance(
            state, breach, now,
            for_seconds=int(rule["for_seconds"]),
            keep_firing_for_seconds=int(rule["keep_firing_for_seconds"]),
        )  # fmt: skip
        await self._apply(rule, state, moved, reading, now, report)

    async def _read(
        self, gate: asyncio.Semaphore, team: str, rule: Document, now: datetime
    ) -> tuple[Reading, Any]:
        async with gate:
            return await read_signal(self.store, team, rule, now)

    async def _apply(
        self,
        rule: Document,
        state: Document | None,
        moved: Advance,
        reading: Reading,
        now: datetime,
        report: TickReport,
    ) -> None:
        team, at = rule["team_id"], iso(now)
        changes: dict[str, Any] = {
            "state": moved.state, "since": moved.since, "pending_since": moved.pending_since,
            "firing_since": moved.firing_since, "clear_since": moved.clear_since,
            "last_value": number(reading.value),
            "last_exact": None if reading.value is None else str(reading.value),
            "last_detail": reading.detail, "last_evaluated_at": at, "last_error": None,
        }  # fmt: skip
        event = None
        refresh = False
        if moved.transition is not None:
            started = at if moved.transition == "firing" else (state or {}).get("firing_since", at)
            event = _event(rule, moved.transition, reading, started, at, "recovered")
            changes["event_id"] = event["id"] if moved.transition == "firing" else None
            changes["refreshed_at"] = at
        elif moved.state == "firing" and _has_alertmanager(rule):
            last = (state or {}).get("refreshed_at")
            if last is None or now - parse_iso(last) >= timedelta(
                seconds=self.settings.resend_seconds
            ):
                refresh, changes["refreshed_at"] = True, at
        if not await self._write_state(rule, state, changes, now):
            return  # another evaluator moved it meanwhile: its transition, not ours
        if event is not None:
            await self._record(team, rule, event, now, report)
        elif refresh:
            fired = _event(rule, "firing", reading, (state or {})["firing_since"], at, None)
            fired["id"] = (state or {}).get("event_id") or fired["id"]
            await self._queue(team, rule, fired, "refresh", now, only="alertmanager")

    async def _write_state(
        self, rule: Document, state: Document | None, changes: dict[str, Any], now: datetime
    ) -> bool:
        team = rule["team_id"]
        snapshot = {k: rule.get(k) for k in _SNAPSHOT}
        if state is None:
            doc = {
                "id": rule["id"], "rule_id": rule["id"], "state": "inactive", "since": iso(now),
                **changes, "rule": snapshot, "version": 1,
            }  # fmt: skip
            try:
                await self.store.insert(ALERT_STATES, team, doc)
            except Conflict:
                return False
            return True
        version = int(state.get("version", 0))
        return await self.store.update(
            ALERT_STATES, team, rule["id"],
            {**changes, "rule": snapshot, "version": version + 1},
            where={"version": state.get("version")},
        )  # fmt: skip

    async def _retire(self, state: Document, now: datetime, report: TickReport) -> None:
        """A live state whose rule is gone or disabled: resolve it if it fired, then rest."""
        team, rule_id = state["team_id"], state["id"]
        try:
            rule = await self.store.get(ALERT_RULES, team, rule_id)
            if rule is not None and rule.get("enabled"):
                return  # created or enabled after this tick read the rules
            reason = "deleted" if rule is None else "disabled"
            at = iso(now)
            if rule is None:
                done = await self.store.delete(ALERT_STATES, team, rule_id)
            else:
                done = await self.store.update(
                    ALERT_STATES, team, rule_id,
                    {"state": "inactive", "since": at, "pending_since": None,
                     "firing_since": None, "clear_since": None, "event_id": None,
                     "version": int(state.get("version", 0)) + 1},
                    where={"version": state.get("version")},
                )  # fmt: skip
            if done and state.get("state") == "firing":
                snapshot = {"id": rule_id, "team_id": team, **(state.get("rule") or {})}
                value = state.get("last_exact")
                reading = Reading(None if value is None else Decimal(value), {})
                event = _event(snapshot, "resolved", reading, state["firing_since"], at, reason)
                await self._record(team, snapshot, event, now, report)
        except Exception as exc:
            log.warning("alert state %s of team %s: %s", rule_id, team, exc)

    async def _record(
        self, team: str, rule: Mapping[str, Any], event: Document, now: datetime,
        report: TickReport,
    ) -> None:  # fmt: skip
        await self.store.insert(ALERT_EVENTS, team, event)
        if event["kind"] == "firing":
            report.fired += 1
        else:
            report.resolved += 1
        await self._supersede(team, rule["id"])
        await self._queue(team, rule, event, event["kind"], now)

    async def _supersede(self, team: str, rule_id: str) -> None:
        waiting = await self.store.find(
            ALERT_DELIVERIES, team,
            {"rule_id": rule_id, "status": {"$in": ["pending", "retrying"]}}, limit=1000,
        )  # fmt: skip
        for old in waiting:
            await self.store.update(
                ALERT_DELIVERIES, team, old["id"], {"status": "superseded", "next_attempt_at": None},
                where={"status": old["status"], "attempts": old["attempts"]},
            )  # fmt: skip

    async def _queue(
        self,
        team: str,
        rule: Mapping[str, Any],
        event: Document,
        kind: str,
        now: datetime,
        only: str | None = None,
    ) -> None:
        alert = _alert(team, rule, event)
        at = iso(now)
        for i, channel in enumerate(rule.get("channels") or []):
            if only is not None and channel["type"] != only:
                continue
            target = {"webhook": channel.get("url"), "event": channel.get("topic")}.get(
                channel["type"], "alertmanager"
            )
            await self.store.insert(
                ALERT_DELIVERIES, team,
                {"id": new_id("ad"), "rule_id": rule["id"], "event_id": event["id"],
                 "channel": i, "type": channel["type"], "kind": kind, "status": "pending",
                 "attempts": 0, "target": target, "channel_spec": dict(channel), "alert": alert,
                 "created_at": at, "next_attempt_at": at, "last_attempt_at": None,
                 "delivered_at": None, "last_error": None, "response_status": None},
            )  # fmt: skip

    # -- delivery -----------------------------------------------------------------------
    async def _deliver_due(self, now: datetime, report: TickReport) -> None:
        due = await self.store.scan_all_teams(
            ALERT_DELIVERIES,
            {"status": {"$in": ["pending", "retrying"]}, "next_attempt_at": {"$lte": iso(now)}},
            limit=MAX_DUE,
        )
        due.sort(key=lambda d: (d["created_at"], d["id"]))
        outcomes = await asyncio.gather(*(self._deliver(d, now) for d in due))
        report.delivered += sum(1 for ok in outcomes if ok)
        report.failed += sum(1 for ok in outcomes if ok is False)

    async def _deliver(self, delivery: Document, now: datetime) -> bool | None:
        """Claim ``delivery`` (its next attempt moved past this one's timeout, so a process that
        dies while sending leaves it to be retried) and send it; ``None`` if another claimed it."""
        team, limit = delivery["team_id"], self.settings.delivery_timeout_seconds
        lease = iso(now + timedelta(seconds=2 * limit + 1))
        attempts = int(delivery["attempts"]) + 1
        claimed = await self.store.update(
            ALERT_DELIVERIES, team, delivery["id"],
            {"next_attempt_at": lease, "attempts": attempts, "last_attempt_at": iso(now)},
            where={"status": delivery["status"], "attempts": delivery["attempts"]},
        )  # fmt: skip
        if not claimed:
            return None
        try:
            status = await asyncio.wait_for(self.channels.send(team, delivery, now), limit)
        except Exception as exc:
            final = delivery["kind"] == "refresh" or attempts >= self.settings.max_delivery_attempts
            delay = min(
                self.settings.retry_seconds * 2 ** (attempts - 1), self.settings.max_retry_seconds
            )
            await self.store.update(
                ALERT_DELIVERIES, team, delivery["id"],
                {"status": "failed" if final else "retrying", "last_error": _error(exc),
                 "response_status": getattr(exc, "status", None),
                 "next_attempt_at": None if final else iso(now + timedelta(seconds=delay))},
                where={"attempts": attempts},
            )  # fmt: skip
            log.info(
                "alert delivery %s (%s) attempt %s failed: %s",
                delivery["id"], delivery["type"], attempts, _error(exc),
            )  # fmt: skip
            return False
        await self.store.update(
            ALERT_DELIVERIES, team, delivery["id"],
            {"status": "delivered", "delivered_at": iso(now), "next_attempt_at": None,
             "last_error": None, "response_status": status},
            where={"attempts": attempts},
        )  # fmt: skip
        return True


def _has_alertmanager(rule: Mapping[str, Any]) -> bool:
    return any(c["type"] == "alertmanager" for c in rule.get("channels") or [])


def _error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, asyncio.TimeoutError):
        text = "timed out"
    return text[:500]


def _event(
    rule: Mapping[str, Any], kind: str, reading: Reading, started: str, at: str, reason: str | None
) -> Document:
    return {
        "id": new_id("ae"), "rule_id": rule["id"], "rule_name": rule["name"], "kind": kind,
        "at": at, "value": number(reading.value),
        "exact": None if reading.value is None else str(reading.value),
        "threshold": rule["threshold"], "comparison": rule["comparison"],
        "severity": rule["severity"], "signal": rule["signal"], "started_at": started,
        "reason": reason if kind == "resolved" else None, "detail": reading.detail,
    }  # fmt: skip


def _alert(team: str, rule: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
    """What every channel says about the alert (no secret: channels carry names only)."""
    resolved = event["kind"] == "resolved"
    value = "no data" if event.get("exact") is None else event["exact"]
    summary = (
        f"{rule['name']} resolved ({event.get('reason')}): {rule['signal']} is {value}"
        if resolved
        else f"{rule['name']}: {rule['signal']} is {value} ({rule['comparison']} "
        f"{rule['threshold']:g})"
    )
    return {
        "rule_id": rule["id"], "name": rule["name"], "team_id": team,
        "description": rule.get("description") or "", "severity": rule["severity"],
        "signal": rule["signal"], "params": dict(rule.get("params") or {}),
        "window": rule.get("window"), "comparison": rule["comparison"],
        "threshold": rule["threshold"], "value": event.get("value"), "exact": event.get("exact"),
        "status": "resolved" if resolved else "firing", "started_at": event["started_at"],
        "resolved_at": event["at"] if resolved else None, "reason": event.get("reason"),
        "labels": dict(rule.get("labels") or {}), "summary": summary, "event_id": event["id"],
    }  # fmt: skip
