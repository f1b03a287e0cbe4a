"""A rule's body checked and normalised before it is stored: every refusal is a 400 naming the
field (``signal``, ``params.workflow_id``, ``threshold``, ``window``, ``for``,
``channels[0].url`` …), the same for the HTTP API and a Python caller."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from linqra._config_alerts import AlertSettings
from linqra.alerts._durations import format_duration, parse_duration
from linqra.alerts.models import AlertRuleInput
from linqra.alerts.secrets import check_secret_name
from linqra.alerts.signals import SIGNALS, Signal
from linqra.errors import ValidationError
from linqra.events.base import check_topic
from linqra.validation import parse_model

__all__ = ["MAX_FOR", "MAX_WINDOW", "MIN_WINDOW", "RESERVED_LABELS", "check_rule"]

MIN_WINDOW, MAX_WINDOW = 10, 31 * 86_400
MAX_FOR = 7 * 86_400
RESERVED_LABELS = frozenset({"alertname", "team", "rule_id", "severity", "signal"})
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MAX_LABELS = 10

Exists = Callable[[str], Awaitable[bool]]


async def check_rule(
    data: Any,
    settings: AlertSettings,
    *,
    secret_exists: Exists,
    workflow_exists: Exists,
) -> dict[str, Any]:
    """The rule's stored fields from a request body (without id, version and times)."""
    rule = parse_model(AlertRuleInput, data)
    signal = SIGNALS.get(rule.signal)
    if signal is None:
        raise ValidationError(
            f"unknown signal {rule.signal[:64]!r}; one of {', '.join(SIGNALS)}", field="signal"
        )
    params = _params(signal, rule.params)
    if "workflow_id" in params and not await workflow_exists(str(params["workflow_id"])):
        raise ValidationError(
            f"the team has no workflow {params['workflow_id']!r}", field="params.workflow_id"
        )
    _threshold(signal, rule.threshold)
    window = parse_duration(rule.window, "window", minimum=MIN_WINDOW, maximum=MAX_WINDOW)
    hold = parse_duration(rule.for_, "for", minimum=0, maximum=MAX_FOR)
    keep = parse_duration(rule.keep_firing_for, "keep_firing_for", minimum=0, maximum=MAX_FOR)
    _labels(rule.labels)
    channels = [
        await _channel(i, c.model_dump(exclude_none=True), settings, secret_exists)
        for i, c in enumerate(rule.channels)
    ]
    return {
        "name": rule.name.strip() or rule.name,
        "description": rule.description,
        "enabled": rule.enabled,
        "signal": signal.name,
        "params": params,
        "comparison": rule.comparison,
        "threshold": float(rule.threshold),
        "window": format_duration(window),
        "window_seconds": window,
        "for": format_duration(hold),
        "for_seconds": hold,
        "keep_firing_for": format_duration(keep),
        "keep_firing_for_seconds": keep,
        "severity": rule.severity,
        "labels": dict(rule.labels),
        "channels": channels,
    }


def _params(signal: Signal, given: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in given.items():
        spec = signal.params.get(name)
        field = f"params.{name}"
        if spec is None:
            known = ", ".join(signal.params) or "none"
            raise ValidationError(
                f"{signal.name} takes no parameter {name[:64]!r} (it takes: {known})", field=field
            )
        if spec.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError(f"{name} is a whole number", field=field)
            if not spec.minimum <= value <= spec.maximum:
                raise ValidationError(f"{name} is {spec.minimum} to {spec.maximum:,}", field=field)
        elif not isinstance(value, str) or not 1 <= len(value) <= 200:
            raise ValidationError(f"{name} is a string of 1 to 200 characters", field=field)
        if spec.choices and value not in spec.choices:
            raise ValidationError(
                f"{name} is one of {', '.join(spec.choices)}, not {str(value)[:64]!r}", field=field
            )
        params[name] = value
    for name, spec in signal.params.items():
        if name not in params and spec.default is not None:
            params[name] = spec.default
    return params


def _threshold(signal: Signal, threshold: float) -> None:
    if signal.unit == "ratio" and not 0 <= threshold <= 1:
        raise ValidationError(
            f"{signal.name} is a ratio: the threshold is 0 to 1 (0.05 is 5 %)", field="threshold"
        )
    if threshold < 0:
        raise ValidationError(f"{signal.name} is never negative: threshold >= 0", field="threshold")


def _labels(labels: Mapping[str, str]) -> None:
    if len(labels) > MAX_LABELS:
        raise ValidationError(f"at most {MAX_LABELS} labels", field="labels")
    for name, value in labels.items():
        field = f"labels.{name[:64]}"
        if not _LABEL.fullmatch(name):
            raise ValidationError(
                "a label name is letters, digits and '_', not starting with a digit", field=field
            )
        if name in RESERVED_LABELS:
            raise ValidationError(f"label {name!r} is set by Linqra", field=field)
        if len(value) > 200:
            raise ValidationError("a label value is at most 200 characters", field=field)


_ALLOWED = {
    "webhook": {"type", "url", "secret"},
    "event": {"type", "topic"},
    "alertmanager": {"type"},
}


async def _channel(
    i: int, channel: dict[str, Any], settings: AlertSettings, secret_exists: Exists
) -> dict[str, Any]:
    where = f"channels[{i}]"
    kind = channel["type"]
    extra = sorted(set(channel) - _ALLOWED[kind])
    if extra:
        raise ValidationError(f"a {kind} channel takes no {extra[0]}", field=f"{where}.{extra[0]}")
    if kind == "webhook":
        url = channel.get("url")
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(
                "a webhook channel needs an absolute http(s) URL", field=f"{where}.url"
            )
        if parts.username or parts.password:
            raise ValidationError(
                "put no credentials in the URL: the call is signed with `secret`",
                field=f"{where}.url",
            )
        name = check_secret_name(channel.get("secret"), f"{where}.secret")
        if not await secret_exists(name):
            raise ValidationError(
                f"the team has no alert secret {name!r}: PUT /v1/alerts/secrets/{name} first",
                field=f"{where}.secret",
            )
    elif kind == "event":
        check_topic(channel.get("topic") or "", field=f"{where}.topic")
    elif not settings.alertmanager_url:
        raise ValidationError(
            "no Alertmanager is configured (alerts.alertmanager_url)", field=f"{where}.type"
        )
    return channel
