"""Metrics through ``prometheus_client``, for a process that runs without Ray (``uvicorn``,
a driver script): its own registry, served at ``http://<metrics.host>:<metrics.port>/metrics``
on a listener of its own — not on the API's port, so scraping needs no API credential and the
API's users do not see the operator's figures.

Names are the catalogue's exactly (no ``ray_`` prefix): a dashboard made for the cluster works
here too. One exporter per process: a second :class:`PrometheusMetrics` on the same port fails.
"""

from __future__ import annotations

import threading
from typing import Any

from linqra.metrics.base import Instrument, Metrics

__all__ = ["PrometheusMetrics"]


class PrometheusMetrics(Metrics):
    def __init__(self, *, team_labels: bool = False) -> None:
        try:
            import prometheus_client
        except ImportError as exc:  # pragma: no cover - ray[default] brings it
            raise RuntimeError(
                "metrics.port needs prometheus_client (pip install prometheus-client)"
            ) from exc
        super().__init__(team_labels=team_labels)
        self._client = prometheus_client
        self.registry = prometheus_client.CollectorRegistry()
        self._instruments: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._server: Any = None
        self.url: str | None = None

    def serve(self, host: str, port: int) -> str:
        """Listen on ``host:port`` (0: a free port); the URL of its ``/metrics`` page."""
        server, _thread = self._client.start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        self.url = f"http://{host}:{server.server_port}/metrics"
        return self.url

    def exposition(self) -> bytes:
        """The registry in Prometheus's text format (what ``/metrics`` answers)."""
        return bytes(self._client.generate_latest(self.registry))

    def close(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.shutdown()
            server.server_close()

    def _metric(self, instrument: Instrument) -> Any:
        metric = self._instruments.get(instrument.name)
        if metric is not None:
            return metric
        with self._lock:
            metric = self._instruments.get(instrument.name)
            if metric is None:
                c = self._client
                args: dict[str, Any] = {
                    "name": instrument.name,
                    "documentation": instrument.description,
                    "labelnames": instrument.label_names(self.team_labels),
                    "registry": self.registry,
                }
                if instrument.kind == "counter":
                    metric = c.Counter(**args)
                elif instrument.kind == "histogram":
                    metric = c.Histogram(**args, buckets=instrument.buckets)
                else:
                    metric = c.Gauge(**args)
                self._instruments[instrument.name] = metric
        return metric

    def _emit(self, instrument: Instrument, value: float, values: tuple[str, ...]) -> None:
        metric = self._metric(instrument)
        if values:
            metric = metric.labels(*values)
        if instrument.kind == "counter":
            metric.inc(value)
        elif instrument.kind == "histogram":
            metric.observe(value)
        else:
            metric.set(value)
