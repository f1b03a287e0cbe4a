"""Metrics kept in memory, for tests: what was recorded, asked back by instrument and labels.

Strict: a recording error (an undeclared label, a counter decremented) raises at the call that
made it, where the other adapters log it once and go on.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from linqra.metrics.base import Instrument, Metrics

__all__ = ["MemoryMetrics"]

Series = tuple[str, tuple[tuple[str, str], ...]]


class MemoryMetrics(Metrics):
    """Counters summed, histograms as their observations, gauges as their last value."""

    strict = True

    def __init__(self, *, team_labels: bool = False) -> None:
        super().__init__(team_labels=team_labels)
        self._lock = threading.Lock()
        self._recorded: dict[Series, list[float]] = defaultdict(list)

    def _emit(self, instrument: Instrument, value: float, values: tuple[str, ...]) -> None:
        key = (
            instrument.name,
            tuple(zip(instrument.label_names(self.team_labels), values, strict=True)),
        )
        with self._lock:
            if instrument.kind == "gauge":
                self._recorded[key] = [value]
            else:
                self._recorded[key].append(value)

    def series(
        self, instrument: Instrument, **labels: str
    ) -> dict[tuple[tuple[str, str], ...], list[float]]:
        """Every recorded label set of ``instrument`` that has ``labels``, with its values."""
        want = set(labels.items())
        with self._lock:
            return {
                key[1]: list(values)
                for key, values in self._recorded.items()
                if key[0] == instrument.name and want <= set(key[1])
            }

    def value(self, instrument: Instrument, **labels: str) -> float:
        """A counter's total, or a gauge's value, summed over the series that have ``labels``
        (0 when none was recorded)."""
        if instrument.kind == "histogram":
            raise TypeError(f"{instrument.name} is a histogram: use observations()")
        return sum(sum(v) for v in self.series(instrument, **labels).values())

    def observations(self, instrument: Instrument, **labels: str) -> list[float]:
        """A histogram's observations over the series that have ``labels``."""
        if instrument.kind != "histogram":
            raise TypeError(f"{instrument.name} is a {instrument.kind}: use value()")
        return [v for values in self.series(instrument, **labels).values() for v in values]

    def clear(self) -> None:
        with self._lock:
            self._recorded.clear()
