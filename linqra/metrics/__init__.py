"""Metrics: the port (:mod:`linqra.metrics.base`), the one catalogue of instruments
(:mod:`linqra.metrics.catalogue`), the adapters without Ray, and the few recording helpers that
more than one module shares. ``actors.metrics`` holds the Ray adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from linqra.metrics.base import NOOP, Instrument, Metrics, NoopMetrics
from linqra.metrics.catalogue import (
    CATALOGUE,
    EVENT_CONSUMER_LAG,
    STEP_ATTEMPTS,
    STEP_DURATION,
    STEPS,
)
from linqra.metrics.memory import MemoryMetrics

if TYPE_CHECKING:
    from linqra.config import Settings
    from linqra.steps.base import StepCall
    from linqra.steps.runtime import StepOutcome

__all__ = [
    "CATALOGUE",
    "NOOP",
    "Instrument",
    "MemoryMetrics",
    "Metrics",
    "NoopMetrics",
    "count_step",
    "open_metrics",
    "record_lag",
    "record_step",
]


def open_metrics(settings: Settings) -> Metrics:
    """This process's recorder when it runs without Ray: ``prometheus_client`` served on
    ``metrics.port`` when one is set, else :data:`NOOP` (nothing would read the figures)."""
    config = settings.metrics
    if not config.enabled or config.port is None:
        return NOOP
    from linqra.metrics.prometheus import PrometheusMetrics

    metrics = PrometheusMetrics(team_labels=config.team_labels)
    metrics.serve(config.host, config.port)
    return metrics


def record_step(metrics: Metrics, call: StepCall, outcome: StepOutcome) -> None:
    """A step that ran to an outcome: its count, duration and attempts."""
    if not metrics.enabled:
        return
    status = str(outcome.status)
    metrics.add(STEPS, team=call.team_id, target=call.target, executor=call.kind, status=status)
    metrics.observe(
        STEP_DURATION, outcome.duration_ms / 1000, target=call.target, executor=call.kind
    )
    metrics.add(STEP_ATTEMPTS, outcome.attempts, target=call.target, executor=call.kind)


def count_step(metrics: Metrics, team: str, target: str, executor: str, status: str) -> None:
    """A step that ended without running: skipped, refused before it started, or answered
    from the step cache (``executor="cache"``)."""
    if metrics.enabled:
        metrics.add(STEPS, team=team, target=target, executor=executor, status=status)


def record_lag(metrics: Metrics, group: str, published_at: str) -> None:
    """An event handled by consumer group ``group``: the time since it was published."""
    if not metrics.enabled or not published_at:
        return
    from linqra.clock import parse_iso, utcnow

    try:
        lag = (utcnow() - parse_iso(published_at)).total_seconds()
    except ValueError:
        return
    metrics.observe(EVENT_CONSUMER_LAG, max(lag, 0.0), group=group)
