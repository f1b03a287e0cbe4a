"""Sending one notification to one channel: a signed webhook, an event on the team's bus topic,
or an alert posted to Alertmanager's API v2.

**Webhook.** ``POST <url>`` with the JSON body below, signed as Linqra's own webhooks are
(:func:`linqra.scheduling.hooks.sign`; a Linqra hook accepts these calls as they are)::

    X-Linqra-Timestamp: <unix seconds of this attempt>
    X-Linqra-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
    X-Linqra-Delivery: <delivery id>          (the same on every attempt: deduplicate on it)
    X-Linqra-Event: alert.firing | alert.resolved

    {"version": "1", "type": "alert.firing", "delivery_id": …, "team_id": …, "sent_at": …,
     "alert": {rule_id, name, severity, signal, params, comparison, threshold, value, exact,
               status, started_at, resolved_at, reason, labels, summary, event_id}}

The timestamp is signed with the body, so a receiver that refuses timestamps older than a few
minutes and signatures it has seen cannot be replayed to (:func:`verify`). The secret is the
team's alert secret the channel names, read when the call is made. The URL is checked against
the egress policy (``egress.*``, as ``http`` steps are) at every attempt.

**Event.** Published on the team's topic (``linqra.<team>.<topic>``, where EVENT_DRIVEN triggers
listen) with ``{"type": "alert.firing", "alert": {…}}``, keyed by the rule, with the delivery id as
its idempotency key.

**Alertmanager.** ``POST <alerts.alertmanager_url>/api/v2/alerts`` with one alert: ``labels``
(``alertname`` = the rule's name, ``team``, ``rule_id``, ``severity``, ``signal`` and the rule's
own), ``annotations`` (``summary``, ``value``, ``threshold``, ``description``), ``startsAt``, and
``endsAt``: for a firing alert ``4 x alerts.resend_seconds`` ahead (it is posted again every
``resend_seconds`` while firing, so Alertmanager resolves it by itself if Linqra stops), for a
resolved one the instant it resolved. ``generatorURL`` links to the rule under
``alerts.external_url`` when that is set.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx

from linqra._config_alerts import AlertSettings
from linqra.alerts.secrets import AlertSecrets
from linqra.clock import iso
from linqra.config import EgressPolicy
from linqra.events import EventBus
from linqra.scheduling.hooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from linqra.scheduling.triggers import team_topic
from linqra.steps.http import check_egress

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "Channels",
    "DeliveryFailed",
    "alertmanager_alert",
    "verify",
]

DELIVERY_HEADER = "X-Linqra-Delivery"
EVENT_HEADER = "X-Linqra-Event"
_ERROR_CHARS = 500


class DeliveryFailed(Exception):
    """A notification did not get through (recorded on its delivery, retried later)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message[:_ERROR_CHARS])
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (DeliveryFailed, (str(self), self.status))


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float, tolerance: float = 300
) -> bool:
    """Whether a webhook call is genuine and fresh: its signature over its timestamp and body
    matches ``secret`` and the timestamp is within ``tolerance`` seconds of ``now`` (a receiver
    also remembers the signatures it accepted, or the ``X-Linqra-Delivery`` ids, to refuse a
    replay inside that window)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isascii() or not stamp.isdigit() or abs(now - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), given)


def alertmanager_alert(
    alert: Mapping[str, Any], settings: AlertSettings, now: datetime
) -> dict[str, Any]:
    """The alert as Alertmanager's ``postableAlert``."""
    labels = {
        **{k: v for k, v in (alert.get("labels") or {}).items() if v},
        "alertname": alert["name"],
        "team": alert["team_id"],
        "rule_id": alert["rule_id"],
        "severity": alert["severity"],
        "signal": alert["signal"],
    }
    annotations = {
        "summary": alert["summary"],
        "value": "no data" if alert.get("exact") is None else str(alert["exact"]),
        "threshold": f"{alert['comparison']} {alert['threshold']}",
    }
    if alert.get("description"):
        annotations["description"] = str(alert["description"])
    if alert["status"] == "resolved":
        ends = alert.get("resolved_at") or iso(now)
    else:
        ends = iso(now + timedelta(seconds=4 * settings.resend_seconds))
    posted: dict[str, Any] = {
        "labels": labels, "annotations": annotations,
        "startsAt": alert["started_at"], "endsAt": ends,
    }  # fmt: skip
    if settings.external_url:
        posted["generatorURL"] = (
            f"{settings.external_url.rstrip('/')}/v1/alerts/rules/{alert['rule_id']}"
        )
    return posted


class Channels:
    """The senders. ``bus``: the process's event bus, opened on first use."""

    def __init__(
        self,
        settings: AlertSettings,
        secrets: AlertSecrets,
        bus: Callable[[], EventBus],
        egress: EgressPolicy,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        self.bus = bus
        self.egress = egress
        self._http = http
        self._owns_http = http is None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.settings.delivery_timeout_seconds, follow_redirects=False
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None and self._owns_http:
            await self._http.aclose()
            self._http = None

    async def send(self, team_id: str, delivery: Mapping[str, Any], now: datetime) -> int | None:
        """Send ``delivery`` (a record of ``alert_deliveries``); the HTTP status it got, if any.
        :class:`DeliveryFailed` when it did not get through."""
        channel, alert = delivery["channel_spec"], delivery["alert"]
        kind = "firing" if delivery["kind"] == "refresh" else delivery["kind"]
        if channel["type"] == "event":
            topic = team_topic(team_id, channel["topic"])
            try:
                await self.bus().publish(
                    topic, {"type": f"alert.{kind}", "alert": dict(alert)},
                    key=alert["rule_id"], idempotency_key=delivery["id"],
                )  # fmt: skip
            except Exception as exc:
                raise DeliveryFailed(
                    f"the event bus refused it: {type(exc).__name__}: {exc}"
                ) from exc
            return None
        if channel["type"] == "webhook":
            return await self._webhook(team_id, delivery, channel, kind, now)
        url = f"{self.settings.alertmanager_url.rstrip('/')}/api/v2/alerts"
        if not self.settings.alertmanager_url:
            raise DeliveryFailed("no Alertmanager is configured (alerts.alertmanager_url)")
        body = json.dumps([alertmanager_alert(alert, self.settings, now)]).encode()
        return await self._post(url, body, {"Content-Type": "application/json"})

    async def _webhook(
        self,
        team_id: str,
        delivery: Mapping[str, Any],
        channel: Mapping[str, Any],
        kind: str,
        now: datetime,
    ) -> int:
        url = channel["url"]
        try:
            await check_egress(url, self.egress)
        except Exception as exc:
            raise DeliveryFailed(f"the egress policy refuses {url}: {exc}") from exc
        secret = await self.secrets.reveal(team_id, channel["secret"])
        if secret is None:
            raise DeliveryFailed(f"the team has no alert secret {channel['secret']!r} any more")
        body = json.dumps(
            {
                "version": "1",
                "type": f"alert.{kind}",
                "delivery_id": delivery["id"],
                "team_id": team_id,
                "sent_at": iso(now),
                "alert": dict(delivery["alert"]),
            },
            separators=(",", ":"),
        ).encode()
        stamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(secret, stamp, body),
            DELIVERY_HEADER: delivery["id"],
            EVENT_HEADER: f"alert.{kind}",
            "User-Agent": "linqra-alerts/1",
        }
        return await self._post(url, body, headers)

    async def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            response = await self.http.post(url, content=body, headers=dict(headers))
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc or 'no answer'}") from exc
        if not 200 <= response.status_code < 300:
            text = response.text[:200].strip()
            raise DeliveryFailed(
                f"HTTP {response.status_code}{': ' + text if text else ''}", response.status_code
            )
        return response.status_code
