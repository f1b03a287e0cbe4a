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

On an event loop a value is handed to Ray on the loop's next turn, not at once: a step's three
values cost the runner 45 µs between a step's end and the next step's dispatch, in the middle of
a chain's critical path; a turn later the next step is on its way and the runner would only
wait for it (issue 16's B17). They reach Ray in the order recorded, well within the export
interval.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from linqra.config import Settings
from linqra.metrics import NOOP, Instrument, Metrics

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


_Value = tuple[Instrument, float, tuple[str, ...]]


class RayMetrics(Metrics):
    """Records through ``ray.util.metrics`` (see the module)."""

    def __init__(self, *, team_labels: bool = False) -> None:
        super().__init__(team_labels=team_labels)
        self._thread = threading.local()  # each thread's loop hands over its own values

    def _emit(self, instrument: Instrument, value: float, values: tuple[str, ...]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: at once
            self._write(instrument, value, values)
            return
        local = self._thread
        pending: list[_Value] | None = getattr(local, "pending", None)
        if pending is None:
            pending = local.pending = []
        if getattr(local, "flush_on", None) is not loop:  # (a loop closed before its turn)
            local.flush_on = loop
            loop.call_soon(self._flush, pending)
        pending.append((instrument, value, values))

    def _flush(self, pending: list[_Value]) -> None:
        self._thread.flush_on = None
        values, pending[:] = pending[:], []
        for instrument, value, labels in values:
            try:
                self._write(instrument, value, labels)
            except Exception:
                self._failed(instrument)

    def _write(self, instrument: Instrument, value: float, values: tuple[str, ...]) -> None:
        names = instrument.label_names(self.team_labels)
        metric = _instrument(instrument, names)
        tags = dict(zip(names, values, strict=True))
        if instrument.kind == "counter":
            metric.inc(value, tags)
        elif instrument.kind == "histogram":
            metric.observe(value, tags)
        else:
            metric.set(value, tags)


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
