"""The metrics port: declared instruments, and a recorder that takes their values.

An :class:`Instrument` is a declaration — name, kind, description, unit, label names, histogram
buckets — made once in :mod:`linqra.metrics.catalogue`; code records values through the
:class:`Metrics` of its process's :class:`~linqra.system.System` (``system.metrics``):

* ``metrics.add(instrument, value=1, team=…, **labels)`` — a counter (never negative);
* ``metrics.observe(instrument, value, team=…, **labels)`` — a histogram;
* ``metrics.set(instrument, value, team=…, **labels)`` — a gauge.

The contract every adapter keeps:

* **Labels are the declared ones, all of them**, as text. ``team`` is not a declared label: an
  instrument that may carry it says ``team=True`` and callers always pass ``team=``; it becomes
  a label only when ``metrics.team_labels`` allows it (cardinality is the operator's choice).
  No instrument takes an execution, document or event id.
* **A metric never fails the work it measures**: a recording error is logged once per
  instrument and dropped (:class:`~linqra.metrics.memory.MemoryMetrics` raises it instead, so
  tests see it).
* **Off costs nothing**: :data:`NOOP` records nothing and says ``enabled = False``, so a caller
  with work to do before recording (a clock read, a parse) may skip it.

Adapters: :data:`NOOP` (the default), :class:`~linqra.metrics.memory.MemoryMetrics` (tests),
:class:`~linqra.metrics.prometheus.PrometheusMetrics` (``prometheus_client``, a process without
Ray) and on a cluster ``actors.metrics.RayMetrics`` (``ray.util.metrics``: Ray's own export and
dashboard).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["NOOP", "Instrument", "Kind", "Metrics", "NoopMetrics"]

log = logging.getLogger(__name__)

Kind = Literal["counter", "histogram", "gauge"]
_NAME = re.compile(r"^linqra_[a-z][a-z0-9_]*[a-z0-9]$")
_LABEL = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED_LABELS = frozenset(
    {"team", "le", "quantile", "job", "instance", "Component", "NodeAddress", "SessionName",
     "Version", "WorkerId", "deployment", "replica", "application", "route"}
)  # fmt: skip
"""Label names an instrument may not declare: ``team`` (see :attr:`Instrument.team`), and those
Prometheus, Ray's export or Serve add themselves."""


@dataclass(frozen=True, slots=True)
class Instrument:
    """One metric's declaration (see :mod:`linqra.metrics.catalogue` for the conventions)."""

    name: str
    kind: Kind
    description: str
    unit: str
    """The base unit: ``seconds``, ``bytes``, ``tokens``, ``nanos`` (of a currency), or ``1``."""
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    """Histogram bucket upper bounds, increasing (``+Inf`` is implied)."""
    team: bool = False
    """Whether it takes a ``team`` label where ``metrics.team_labels`` allows it."""
    label_set: frozenset[str] = field(init=False, repr=False, compare=False)
    """``labels`` as a set: what a recording's label names are checked against."""

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(f"instrument {self.name!r}: {problem}")
        object.__setattr__(self, "label_set", frozenset(self.labels))

    def problem(self) -> str | None:
        """What breaks Prometheus's naming conventions, or ``None``."""
        if not _NAME.match(self.name):
            return "a name is linqra_ and lowercase words joined by _"
        if (self.kind == "counter") != self.name.endswith("_total"):
            return "counters, and only counters, end in _total"
        base = self.name.removesuffix("_total")
        if self.unit not in ("1", "") and not base.endswith(f"_{self.unit}"):
            return f"a name carries its unit: …_{self.unit}"
        if self.kind == "histogram":
            if not self.buckets or list(self.buckets) != sorted(set(self.buckets)):
                return "a histogram has increasing buckets"
            if not all(math.isfinite(b) for b in self.buckets):
                return "buckets are finite (+Inf is implied)"
        elif self.buckets:
            return "only histograms have buckets"
        for label in self.labels:
            if not _LABEL.match(label) or label in RESERVED_LABELS:
                return f"label {label!r} is not allowed"
        if len(set(self.labels)) != len(self.labels):
            return "labels repeat"
        if not self.description.strip():
            return "a description is required"
        return None

    def label_names(self, team_labels: bool) -> tuple[str, ...]:
        """The labels it carries: the declared ones, then ``team`` when allowed."""
        return (*self.labels, "team") if self.team and team_labels else self.labels


class Metrics:
    """Records values of declared instruments (see the module). Adapters implement
    :meth:`_emit`; validation, the ``team`` rule and error containment live here."""

    enabled: bool = True
    strict: bool = False
    """Raise recording errors (tests) instead of logging them once."""

    def __init__(self, *, team_labels: bool = False) -> None:
        self.team_labels = team_labels
        self._warned: set[str] = set()

    def add(
        self, instrument: Instrument, value: float = 1.0, /, *, team: str | None = None,
        **labels: object,
    ) -> None:  # fmt: skip
        """Add ``value`` (≥ 0; 0 records nothing) to a counter."""
        if value == 0:
            return
        self._record("counter", instrument, value, team, labels)

    def observe(
        self, instrument: Instrument, value: float, /, *, team: str | None = None,
        **labels: object,
    ) -> None:  # fmt: skip
        """Count ``value`` into a histogram's bucket."""
        self._record("histogram", instrument, value, team, labels)

    def set(
        self, instrument: Instrument, value: float, /, *, team: str | None = None,
        **labels: object,
    ) -> None:  # fmt: skip
        """Set a gauge (per process: each process's value is its own series)."""
        self._record("gauge", instrument, value, team, labels)

    def flush(self) -> None:
        """Hand over what the adapter holds back (one that gathers values before passing them
        on): the caller's event loop is about to stop."""

    def close(self) -> None:
        """Release what the adapter holds (a listening socket) after handing over what it holds
        back; recording after it is a no-op or still works, as the adapter says."""

    def _record(
        self, kind: Kind, instrument: Instrument, value: float, team: str | None,
        labels: Mapping[str, object],
    ) -> None:  # fmt: skip
        try:
            self._emit(
                instrument, float(value), self._checked(kind, instrument, value, team, labels)
            )
        except Exception:
            self._failed(instrument)

    def _checked(
        self,
        kind: Kind,
        instrument: Instrument,
        value: float,
        team: str | None,
        labels: Mapping[str, object],
    ) -> tuple[str, ...]:
        """The label values of a recording that keeps the contract (see the module), in
        ``instrument.label_names(self.team_labels)``'s order; raises otherwise."""
        if instrument.kind != kind:
            raise TypeError(f"{instrument.name} is a {instrument.kind}, not a {kind}")
        if not math.isfinite(value) or (kind == "counter" and value < 0):
            raise ValueError(f"{instrument.name}: {value!r} cannot be recorded")
        return self._values(instrument, team, labels)

    def _failed(self, instrument: Instrument) -> None:
        """In an ``except`` block: the value was not recorded — raised again in strict mode
        (tests), else logged once per instrument (a metric never breaks the work it measures)."""
        if self.strict:
            raise
        if instrument.name not in self._warned:
            self._warned.add(instrument.name)
            log.warning("metric %s not recorded", instrument.name, exc_info=True)

    def _values(
        self, instrument: Instrument, team: str | None, labels: Mapping[str, object]
    ) -> tuple[str, ...]:
        if labels.keys() != instrument.label_set:
            raise ValueError(
                f"{instrument.name} takes labels {sorted(instrument.labels)}, got {sorted(labels)}"
            )
        if team is not None and not instrument.team:
            raise ValueError(f"{instrument.name} takes no team label")
        values = tuple([str(labels[name]) for name in instrument.labels])  # a list: 2x a generator
        if instrument.team and self.team_labels:
            values += (team or "",)
        return values

    def _emit(self, instrument: Instrument, value: float, values: tuple[str, ...]) -> None:
        """Record ``value``; ``values`` follow ``instrument.label_names(self.team_labels)``."""
        raise NotImplementedError


class NoopMetrics(Metrics):
    """Records nothing (metrics off, or no exporter in this process)."""

    enabled = False

    def add(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        return None

    def observe(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        return None

    def set(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        return None

    def _emit(self, instrument: Instrument, value: float, values: tuple[str, ...]) -> None:
        return None


NOOP: Metrics = NoopMetrics()
"""The default recorder: nothing is recorded."""
