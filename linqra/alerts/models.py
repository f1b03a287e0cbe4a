"""Alert rules, their state, history and deliveries as the API accepts and returns them.

Inputs forbid unknown fields; records keep any other field (``extra="allow"``) as the store holds
them. No model here carries a secret's value: a webhook channel names the team's alert secret
that signs it (``secret``), and only that name is ever stored or shown.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "CHANNEL_TYPES",
    "COMPARISONS",
    "SEVERITIES",
    "AlertDelivery",
    "AlertEvent",
    "AlertRule",
    "AlertRuleInput",
    "AlertSecretInput",
    "AlertSecretView",
    "AlertState",
    "ChannelInput",
    "Evaluation",
    "FiringAlert",
    "SignalInfo",
]

Comparison = Literal[">", ">=", "<", "<="]
Severity = Literal["critical", "warning", "info"]
ChannelType = Literal["webhook", "event", "alertmanager"]
StateName = Literal["inactive", "pending", "firing"]
COMPARISONS = (">", ">=", "<", "<=")
SEVERITIES = ("critical", "warning", "info")
CHANNEL_TYPES = ("webhook", "event", "alertmanager")
ParamValue = str | int | float | bool
Duration = str | int


class ChannelInput(BaseModel):
    """Where a rule's firing and resolved notifications go."""

    model_config = ConfigDict(extra="forbid")

    type: ChannelType = Field(
        description="webhook: a signed POST to `url`; event: published on the team's `topic`; "
        "alertmanager: posted to the configured Alertmanager (`alerts.alertmanager_url`)"
    )
    url: str | None = Field(default=None, max_length=2000, description="webhook: http(s) URL")
    secret: str | None = Field(
        default=None,
        max_length=64,
        description="webhook: the name of the team's alert secret whose value signs each call "
        "(PUT /v1/alerts/secrets/{name}); the value is never stored with the rule",
    )
    topic: str | None = Field(default=None, max_length=200, description="event: the team's topic")


class AlertRuleInput(BaseModel):
    """The body of ``POST /v1/alerts/rules`` and ``PUT /v1/alerts/rules/{id}``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=100, description="unique in the team")
    description: str = Field(default="", max_length=1000)
    enabled: bool = True
    signal: str = Field(
        max_length=64,
        description="what is measured, one of GET /v1/alerts/signals: execution_failure_rate, "
        "team_spend, provider_error_rate, queue_backlog, schedules_missed",
    )
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="the signal's parameters (e.g. workflow_id, provider)"
    )
    comparison: Comparison = Field(default=">", description="value <comparison> threshold fires")
    threshold: float = Field(allow_inf_nan=False)
    window: Duration = Field(
        default="5m", description="how far back a windowed signal looks: 10s to 31d"
    )
    for_: Duration = Field(
        default="0s",
        alias="for",
        description="how long the condition must hold before the alert fires (pending till then)",
    )
    keep_firing_for: Duration = Field(
        default="0s", description="how long a firing alert stays firing after the condition clears"
    )
    severity: Severity = "warning"
    labels: dict[str, str] = Field(
        default_factory=dict, description="extra labels for Alertmanager and the payloads"
    )
    channels: list[ChannelInput] = Field(default_factory=list, max_length=10)

    @field_validator("threshold", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("threshold is a number")
        return value


class AlertState(BaseModel):
    """Where a rule's evaluation stands (``inactive`` until its condition first holds)."""

    model_config = ConfigDict(extra="allow")

    state: StateName
    since: str | None = Field(default=None, description="when it entered this state")
    last_value: float | None = Field(default=None, description="the signal at the last evaluation")
    last_evaluated_at: str | None = None
    last_error: str | None = Field(default=None, description="why the last evaluation failed")
    pending_since: str | None = None
    firing_since: str | None = None
    clear_since: str | None = Field(
        default=None, description="firing, condition cleared since (keep_firing_for running)"
    )


class AlertRule(BaseModel):
    """A stored rule, with its current state."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str
    name: str
    description: str = ""
    enabled: bool
    signal: str
    params: dict[str, ParamValue]
    comparison: Comparison
    threshold: float
    window: str
    window_seconds: int
    for_: str = Field(alias="for")
    for_seconds: int
    keep_firing_for: str
    keep_firing_for_seconds: int
    severity: Severity
    labels: dict[str, str]
    channels: list[ChannelInput]
    version: int
    created_at: str
    updated_at: str
    state: AlertState | None = None


class AlertEvent(BaseModel):
    """One transition of a rule: it started firing, or it resolved."""

    model_config = ConfigDict(extra="allow")

    id: str
    rule_id: str
    rule_name: str
    kind: Literal["firing", "resolved"]
    at: str
    value: float | None = None
    threshold: float
    comparison: Comparison
    severity: Severity
    signal: str
    started_at: str = Field(description="when this alert started firing")
    reason: str | None = Field(default=None, description="resolved: recovered, disabled or deleted")
    detail: dict[str, Any] = Field(default_factory=dict)


class AlertDelivery(BaseModel):
    """One notification to one channel, with its attempts."""

    model_config = ConfigDict(extra="allow")

    id: str
    rule_id: str
    event_id: str | None = None
    channel: int = Field(description="the channel's index in the rule")
    type: ChannelType
    kind: Literal["firing", "resolved", "refresh"]
    status: Literal["pending", "retrying", "delivered", "failed", "superseded"] = Field(
        description="retrying: failed, tried again at next_attempt_at; failed: given up"
    )
    attempts: int
    target: str = Field(description="the webhook URL, the topic, or 'alertmanager'")
    created_at: str
    next_attempt_at: str | None = None
    last_attempt_at: str | None = None
    delivered_at: str | None = None
    last_error: str | None = None
    response_status: int | None = None


class FiringAlert(BaseModel):
    """A rule that is firing now."""

    model_config = ConfigDict(extra="allow")

    rule_id: str
    name: str
    severity: Severity
    signal: str
    value: float | None = None
    threshold: float
    comparison: Comparison
    firing_since: str
    event_id: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class Evaluation(BaseModel):
    """A dry run of a rule: its signal now, and what an evaluation would do (nothing is kept)."""

    model_config = ConfigDict(extra="allow")

    rule_id: str
    signal: str
    value: float | None = Field(description="null: no data in the window (never fires)")
    exact: str | None = Field(default=None, description="the value as exact decimal text")
    breach: bool = Field(description="value <comparison> threshold")
    threshold: float
    comparison: Comparison
    window_from: str | None = None
    window_to: str
    state: StateName = Field(description="the rule's state now")
    next_state: StateName = Field(description="its state if it were evaluated now")
    detail: dict[str, Any] = Field(default_factory=dict)


class SignalInfo(BaseModel):
    """One signal a rule may watch."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    unit: Literal["ratio", "count", "money", "seconds"]
    windowed: bool = Field(description="false: measured at the instant, `window` is not used")
    params: dict[str, str] = Field(description="parameter name -> what it means")


class AlertSecretInput(BaseModel):
    """The body of ``PUT /v1/alerts/secrets/{name}``."""

    model_config = ConfigDict(extra="forbid")

    value: str = Field(
        min_length=8,
        max_length=4096,
        description="the signing key; printable ASCII without spaces (stored sealed, never shown)",
    )


class AlertSecretView(BaseModel):
    """A team's alert secret, masked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    last4: str
    key_version: int = Field(description="the master key version it is sealed with")
    created_at: str
    updated_at: str
