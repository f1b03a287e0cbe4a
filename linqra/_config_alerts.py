"""The ``alerts`` section of the settings (:mod:`linqra.config`): how often alert rules are
evaluated and how their notifications go out (docs/alerts.md). Its own module so that
``config.py`` stays under the project's module size."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["AlertSettings"]

_URL = r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$"


class AlertSettings(BaseModel):
    """Alert rules of every team, evaluated by one evaluator per cluster (``actors/alerts.py``)."""

    model_config = {"extra": "forbid"}

    enabled: bool = Field(default=True, description="the cluster runs the alert evaluator")
    interval_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="how often every enabled rule is evaluated"
    )
    alertmanager_url: str = Field(
        default="",
        pattern=_URL,
        description="the Alertmanager that `alertmanager` channels post to, e.g. "
        "http://alertmanager:9093; empty: rules cannot use that channel",
    )
    external_url: str = Field(
        default="",
        pattern=_URL,
        description="this API as its users reach it; alerts link back to their rule under it "
        "(Alertmanager's generatorURL)",
    )
    resend_seconds: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="a firing alert is posted to Alertmanager again this often (it ends an "
        "alert nobody re-posts at its endsAt: 4 x this later)",
    )
    delivery_timeout_seconds: float = Field(
        default=5.0, gt=0, le=120, description="longest one notification may take"
    )
    max_delivery_attempts: int = Field(
        default=8, ge=1, le=50, description="a notification failing this often is given up"
    )
    retry_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="the first retry's delay (doubled after each)"
    )
    max_retry_seconds: float = Field(
        default=600.0, gt=0, le=86_400, description="the longest delay between two attempts"
    )
    max_rules_per_team: int = Field(default=100, ge=1, le=10_000)
