"""Spans of the cluster's processes exported from a process of their own: the span exporter
actor (issue 16's B17; docs/observability.md, "Traces").

Exporting over OTLP/HTTP in the process that made the spans means encoding them there, in
Python (≈ 40 µs a span), on OpenTelemetry's batch thread — which takes the GIL from the event
loop of a runner stepping through a chain. A Ray process instead hands each batch, as plain rows
(:func:`linqra.tracing.rows`, ≈ 3 µs a span), to the cluster's ``linqra-spans`` actor, which
rebuilds the spans and exports them with OpenTelemetry's own OTLP exporter; the collector sees
the same spans, each with the resource (``process.pid``) of the process that made it.

Tracing stays best-effort, as in the SDK (a full queue drops spans there): a batch is dropped,
and logged, when :data:`IN_FLIGHT` batches of this process are still on their way (the collector
down, the actor restarting), so an outage costs the span makers no memory and no wait.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ray
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from actors.handles import named_actor
from linqra import tracing
from linqra.config import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["IN_FLIGHT", "SPANS", "RelayExporter", "SpanExportActor"]

log = logging.getLogger(__name__)

SPANS = "linqra-spans"
"""The span exporter actor's name in the cluster's namespace."""
IN_FLIGHT = 32
"""Batches a process may have on their way to the actor before it drops the next."""


class SpanExportActor:
    """Exports the batches of every process of the cluster to ``tracing.otlp_url``, one at a
    time (a threaded actor of one: OpenTelemetry's exporter is synchronous)."""

    def __init__(self, url: str) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        self._exporter = OTLPSpanExporter(endpoint=url, timeout=5)

    def export(self, resource: Mapping[str, Any], made: Sequence[tracing.Row]) -> bool:
        result = self._exporter.export(tracing.rebuilt(resource, made))
        return result is SpanExportResult.SUCCESS


class RelayExporter(SpanExporter):
    """What a Ray process's batch processor exports to: the batch as rows, to the actor."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._actor: Any = None
        self._sent: list[ray.ObjectRef] = []
        self._dropped = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            if self._sent:
                _, self._sent = ray.wait(self._sent, num_returns=len(self._sent), timeout=0)
            if len(self._sent) >= IN_FLIGHT:
                self._dropped += len(spans)
                log.warning("span export behind: %d spans dropped so far", self._dropped)
                return SpanExportResult.FAILURE
            if self._actor is None:
                self._actor = named_actor(
                    SpanExportActor, self._settings, SPANS, self._settings.tracing.otlp_url
                )
            resource = dict(spans[0].resource.attributes)
            self._sent.append(self._actor.export.remote(resource, tracing.rows(spans)))
        except Exception:  # Ray shutting down, the actor not placeable: this batch only
            log.warning("span export failed", exc_info=True)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait (up to ``timeout_millis``) for the batches on their way to be exported."""
        if not self._sent:
            return True
        try:
            _, self._sent = ray.wait(
                self._sent, num_returns=len(self._sent), timeout=timeout_millis / 1000
            )
        except Exception:
            return False
        return not self._sent

    def shutdown(self) -> None:
        self.force_flush(5_000)
