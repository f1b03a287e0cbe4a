"""An alert's states and how one evaluation moves it between them (Prometheus' semantics).

::

                 breach, for = 0
      inactive ──────────────────────────────► firing ──┐ breach: stays (clear_since reset)
         │  ▲                                    ▲  │   │
  breach │  │ no breach                  breach, │  │ no breach for keep_firing_for
         ▼  │                   held for `for`   │  ▼   (0: at once) → resolved, inactive
       pending ──────────────────────────────────┘

``pending`` and ``clear_since`` are what stop flapping: a condition must hold for ``for`` before
the alert fires, and must stay clear for ``keep_firing_for`` before it resolves. A value of
``None`` (no data) is no breach. Pure functions of the previous state and the evaluation's
instant: no clock is read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from linqra.clock import iso, parse_iso

__all__ = ["Advance", "advance", "breaches"]

Transition = Literal["firing", "resolved"] | None


@dataclass(frozen=True, slots=True)
class Advance:
    """The state after one evaluation, and the transition it made (``None``: none worth a
    notification — entering or leaving ``pending`` is not one)."""

    state: Literal["inactive", "pending", "firing"]
    since: str
    pending_since: str | None
    firing_since: str | None
    clear_since: str | None
    transition: Transition


def breaches(value: Decimal | None, comparison: str, threshold: float) -> bool:
    """``value <comparison> threshold``, exactly (the threshold as its shortest decimal)."""
    if value is None:
        return False
    limit = Decimal(repr(float(threshold)))
    return {
        ">": value > limit,
        ">=": value >= limit,
        "<": value < limit,
        "<=": value <= limit,
    }[comparison]


def _held(since: str | None, now: datetime, seconds: int) -> bool:
    return since is not None and now - parse_iso(since) >= timedelta(seconds=seconds)


def advance(
    current: Mapping[str, Any] | None,
    breach: bool,
    now: datetime,
    *,
    for_seconds: int,
    keep_firing_for_seconds: int,
) -> Advance:
    """Where a rule in ``current`` (its state record, ``None`` for never evaluated) goes when an
    evaluation at ``now`` finds its condition ``breach``-ed or not."""
    at = iso(now)
    state = (current or {}).get("state", "inactive")
    since = (current or {}).get("since") or at
    pending_since = (current or {}).get("pending_since")
    firing_since = (current or {}).get("firing_since")
    clear_since = (current or {}).get("clear_since")
    if state == "firing":
        if breach:
            return Advance("firing", since, None, firing_since, None, None)
        clear_since = clear_since or at
        if keep_firing_for_seconds == 0 or _held(clear_since, now, keep_firing_for_seconds):
            return Advance("inactive", at, None, None, None, "resolved")
        return Advance("firing", since, None, firing_since, clear_since, None)
    if not breach:
        if state == "inactive":
            return Advance("inactive", since, None, None, None, None)
        return Advance("inactive", at, None, None, None, None)
    pending_since = pending_since if state == "pending" else at
    if for_seconds == 0 or _held(pending_since, now, for_seconds):
        return Advance("firing", at, None, at, None, "firing")
    return Advance("pending", since if state == "pending" else at, pending_since, None, None, None)
