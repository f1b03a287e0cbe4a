"""Sections of the settings (:mod:`linqra.config`) kept in their own module so ``config.py``
stays under the project's module size; ``Settings`` names each under its key."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["LoggingSettings", "TracingSettings"]


class TracingSettings(BaseModel):
    """OpenTelemetry traces (docs/observability.md, "Traces"): off unless ``otlp_url`` is set."""

    model_config = {"extra": "forbid"}

    otlp_url: str = Field(
        default="",
        pattern=r"^(https?://\S+)?$",
        description="OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces; empty: off",
    )
    service_name: str = Field(default="linqra", min_length=1, max_length=100)
    export_delay_ms: int = Field(
        default=2000, ge=10, le=60_000, description="longest a finished span waits to be exported"
    )
    sample_ratio: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="share of new traces recorded (a caller's sampled traceparent always is)",
    )


class LoggingSettings(BaseModel):
    """Log lines of every process (docs/observability.md, "Logs")."""

    model_config = {"extra": "forbid"}

    encoding: Literal["json", "text"] = Field(
        default="json",
        description="one JSON object a line (with request, team, execution and "
        "trace ids), or plain text",
    )
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
