"""The metrics adapter of a Ray process: ``ray.util.metrics``, so Linqra's metrics go out with
Ray's own — each node's metrics agent serves them on its metrics export port, beside Ray's
system metrics, and the Ray dashboard shows them.

Ray exports a metric as ``ray_<name>`` and adds ``_total`` to a counter's name itself, so a
counter is declared to Ray without the catalogue's ``_total``: the catalogue's
``linqra_executions_total`` is scraped as ``ray_linqra_executions_total``, which
``configs/prometheus.yml`` renames back to ``linqra_executions_total``. Ray adds labels of its
own to every series (``WorkerId``, ``NodeAddress``, ``SessionName``, …): each process's values
are a series of their own, summed across processes in a query (``sum by (status) (…)``).

Ray's instruments are per process: they are made once per process here, whatever number of
systems the process opens. Two things differ from ``prometheus_client``: a histogram's ``_sum``
is computed by Ray from bucket midpoints (its buckets and ``_count`` are exact), and values
reach the metrics agent every ``metrics_report_interval_ms`` (Ray's default 10 s).

On an event loop values are gathered and handed to Ray once every ``FLUSH_SECONDS`` (1 s), not as
they are recorded: handed over one by one, a step's three values cost a step chain's runner 29 µs
in its critical path, gathered 9 µs (issue 16's B17). A recording on a loop is gathered by its
instrument, team and labels as given, and its kind and number checked as it is made; its labels
(:meth:`Metrics._values`: the declared names, as text) are checked at the flush, once per label set
rather than once per value. In a tight loop of ``record_step`` (a step's three values, 2026-12-08):
3.6 µs a step where it is recorded and 2.3 µs at the flush, against 2.9 and 8.0 µs when every value
was checked at the flush. A recording with a wrong kind or number is dropped and logged where it is
made, one with wrong labels at the flush. Gathered, a counter's values are one sum per label set
(one ``inc``), a gauge keeps its last value, and a histogram's values go to ``observe`` one by one
(Ray takes no batch). Ray itself reports to the metrics agent every ``metrics_report_interval_ms``
(10 s by default): the second added is small beside it. A loop that runs only during a call
(``actors._context.run_sync``'s) hands its values over as the call ends, and a closing system (an
agent passivating) as it closes (:meth:`RayMetrics.flush`); a process killed loses its last second
of values, as it loses what Ray had not yet reported.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from math import isfinite
from typing import Any

from linqra.config import Settings
from linqra.metrics import NOOP, Instrument, Metrics
from linqra.metrics.base import Kind

__all__ = ["RayMetrics", "ray_metrics"]

_made: dict[tuple[str, tuple[str, ...]], Any] = {}
_lock = threading.Lock()


def _instrument(instrument: Instrument, tag_keys: tuple[str, ...]) -> Any:
    key = (instrument.name, tag_keys)
    metric = _made.get(key)
    if metric is not None:
        return metric
    from ray.util import metrics

    with _lock:
        metric = _made.get(key)
        if metric is None:
            if instrument.kind == "counter":
                name = instrument.name.removesuffix("_total")  # Ray adds it
                metric = metrics.Counter(name, instrument.description, tag_keys)
            elif instrument.kind == "histogram":
                metric = metrics.Histogram(
                    instrument.name, instrument.description, list(instrument.buckets), tag_keys
                )
            else:
                metric = metrics.Gauge(instrument.name, instrument.description, tag_keys)
            _made[key] = metric
    return metric


FLUSH_SECONDS = 1.0
"""How long values recorded on an event loop are gathered before they are handed to Ray."""

_Key = tuple[str, str | None, tuple[tuple[str, object], ...]]
"""A recording's instrument name, team and labels as given: the values gathered under one key
share their label check, made once a flush (see :class:`_Gathered`)."""


class _Gathered:
    """One thread's values not yet handed to Ray (see the module), by instrument, team and
    labels as recorded, and the loop whose timer will hand them over."""

    __slots__ = ("instruments", "lasts", "loop", "observed", "sums", "timer")

    def __init__(self) -> None:
        self.instruments: dict[str, Instrument] = {}
        self.sums: dict[_Key, float] = {}  # counters
        self.lasts: dict[_Key, float] = {}  # gauges
        self.observed: dict[_Key, list[float]] = {}  # histograms, in order
        self.loop: asyncio.AbstractEventLoop | None = None
        self.timer: asyncio.TimerHandle | None = None

    def keep(
        self, instrument: Instrument, value: float, team: str | None, labels: Mapping[str, object]
    ) -> None:
        """Gather a value whose kind and number are checked; its labels are checked once per
        key at the flush (:meth:`take`)."""
        key = (instrument.name, team, tuple(labels.items()))
        kind = instrument.kind
        if kind == "counter":
            self.sums[key] = self.sums.get(key, 0.0) + value
        elif kind == "histogram":
            observed = self.observed.get(key)
            if observed is None:
                self.observed[key] = [value]
            else:
                observed.append(value)
        else:
            self.lasts[key] = value
        if instrument.name not in self.instruments:
            self.instruments[instrument.name] = instrument

    def take(self) -> list[tuple[Instrument, str | None, dict[str, object], list[float]]]:
        """Every value to hand over, by instrument, team and labels, and none left: each
        counter's sum, each gauge's last value, each histogram's values in order."""
        named = self.instruments
        taken = [(named[i], team, dict(ls), [v]) for (i, team, ls), v in self.sums.items()]
        taken += [(named[i], team, dict(ls), [v]) for (i, team, ls), v in self.lasts.items()]
        taken += [(named[i], team, dict(ls), vs) for (i, team, ls), vs in self.observed.items()]
        self.sums, self.lasts, self.observed = {}, {}, {}
        return taken


class RayMetrics(Metrics):
    """Records through ``ray.util.metrics`` (see the module)."""

    def __init__(self, *, team_labels: bool = False, flush_seconds: float = FLUSH_SECONDS) -> None:
        super().__init__(team_labels=team_labels)
        self.flush_seconds = flush_seconds
        self._thread = threading.local()  # each thread's loop hands over its own values

    def _record(
        self,
        kind: Kind,
        instrument: Instrument,
        value: float,
        team: str | None,
        labels: Mapping[str, object],
    ) -> None:
        """On a loop, gathered by its labels as given and handed over at the flush, where each
        set of labels is checked once; a wrong kind or number is dropped here (in strict mode
        everything is checked here, so the error reaches the code that recorded it)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: at once
            super()._record(kind, instrument, value, team, labels)
            return
        try:  # what the check asks but the labels: the kind, a finite number, a counter's ≥ 0
            fine = kind == instrument.kind and isfinite(value) and (kind != "counter" or value >= 0)
        except TypeError:
            fine = False
        if self.strict:
            self._checked(kind, instrument, value, team, labels)
        elif not fine:  # dropped at once, named by the check
            try:
                self._checked(kind, instrument, value, team, labels)
            except Exception:
                self._failed(instrument)
            return
        gathered: _Gathered | None = getattr(self._thread, "gathered", None)
        if gathered is None:
            gathered = self._thread.gathered = _Gathered()
        if gathered.loop is not loop:  # the first value since a flush (or a loop closed before it)
            gathered.loop = loop
            gathered.timer = loop.call_later(self.flush_seconds, self._flush, gathered)
        try:
            gathered.keep(instrument, float(value), team, labels)
        except TypeError:  # a label value that is not text (a list): not a key
            self._failed(instrument)

    def _emit(self, instrument: Instrument, value: float, values: tuple[str, ...]) -> None:
        self._write(instrument, [value], values)

    def flush(self) -> None:
        """Hand this thread's gathered values to Ray now: its loop is about to stop (the end of
        a ``run_sync`` call) or its process to end (a system closing)."""
        gathered: _Gathered | None = getattr(self._thread, "gathered", None)
        if gathered is not None and gathered.loop is not None:  # (else nothing since the last)
            self._flush(gathered)

    def close(self) -> None:
        self.flush()

    def _flush(self, gathered: _Gathered) -> None:
        if gathered.timer is not None:
            gathered.timer.cancel()
        gathered.loop = gathered.timer = None
        for instrument, team, labels, values in gathered.take():
            try:
                checked = self._values(instrument, team, labels)
            except Exception:
                self._failed(instrument)
                continue
            self._write(instrument, values, checked)

    def _write(self, instrument: Instrument, values: list[float], labels: tuple[str, ...]) -> None:
        """Hand ``values`` of one label set to Ray, its tags made once for all of them; one
        that Ray refuses is dropped (:meth:`_failed`), not the rest."""
        try:
            names = instrument.label_names(self.team_labels)
            metric = _instrument(instrument, names)
            tags = dict(zip(names, labels, strict=True))
        except Exception:
            self._failed(instrument)
            return
        if instrument.kind == "counter":
            record = metric.inc
        elif instrument.kind == "histogram":
            record = metric.observe
        else:
            record = metric.set
        for value in values:
            try:
                record(value, tags)
            except Exception:
                self._failed(instrument)


_recorders: dict[bool, RayMetrics] = {}


def ray_metrics(settings: Settings) -> Metrics:
    """The recorder of a Ray process for ``settings`` (:data:`~linqra.metrics.NOOP` when
    ``metrics.enabled`` is off)."""
    config = settings.metrics
    if not config.enabled:
        return NOOP
    recorder = _recorders.get(config.team_labels)
    if recorder is None:
        recorder = _recorders.setdefault(
            config.team_labels, RayMetrics(team_labels=config.team_labels)
        )
    return recorder
