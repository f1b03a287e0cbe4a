"""Time in one place: UTC instants, ISO-8601 text with a ``Z``, monotonic durations."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

__all__ = ["iso", "monotonic", "new_id", "parse_iso", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None = None) -> str:
    """``2026-11-24T06:13:36.123456Z``: fixed width, so text order is time order."""
    moment = moment or utcnow()
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def monotonic() -> float:
    return time.monotonic()


def new_id(prefix: str) -> str:
    """A short sortable-enough unique id such as ``wf_3f9c…``."""
    return f"{prefix}_{uuid.uuid4().hex}"
