"""Spans of the cluster's processes exported from a process of their own: the span exporter
actor (issue 16's B17; docs/observability.md, "Traces").

Exporting over OTLP/HTTP in the process that made the spans means encoding them there, in
Python (≈ 40 µs a span), on OpenTelemetry's batch thread — which takes the GIL from the event
loop of a runner stepping through a chain. A Ray process instead hands each batch, as plain rows
(:func:`linqra.tracing.rows`, ≈ 3 µs a span), to the cluster's ``linqra-spans`` actor, which
rebuilds the spans and exports them with OpenTelemetry's own OTLP exporter; the collector sees
Linqra's spans as the process would have sent them, each with the resource (``process.pid``) of
the process that made it. The actor is the one singleton not made by ``start_cluster``: the
first batch of any process creates it (only a cluster that traces needs it). It is one
synchronous actor, exporting a batch at a time, to the URL each batch names (a redeploy with
another ``tracing.otlp_url`` is followed at once).

Tracing stays best-effort, as in the SDK (whose full queue drops spans): a process with
:data:`IN_FLIGHT` batches still on their way (the collector down, the actor restarting) drops the
next ones, so an outage costs it no wait and at most that many batches of memory. What is
dropped or refused is logged when it starts and when exporting works again, not once a batch.
"""

from __future__ import annotations

import logging
import threading
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
SHUTDOWN_WAIT_SECONDS = 2.0
"""How long a process ending (an agent passivating) waits for its last batches to be taken."""


class SpanExportActor:
    """Exports the batches of every process of the cluster over OTLP/HTTP."""

    def __init__(self) -> None:
        self._exporters: dict[str, Any] = {}
        self._exported: dict[int, int] = {}

    def export(self, url: str, resource: Mapping[str, Any], made: list[tracing.SpanRow]) -> bool:
        exporter = self._exporters.get(url)
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = self._exporters[url] = OTLPSpanExporter(endpoint=url, timeout=5)
        if exporter.export(tracing.rebuilt(resource, made)) is not SpanExportResult.SUCCESS:
            return False
        pid = resource.get("process.pid")
        if isinstance(pid, int):
            self._exported[pid] = self._exported.get(pid, 0) + len(made)
        return True

    def exported(self) -> dict[int, int]:
        """How many spans of each process (by ``process.pid``) it has exported."""
        return dict(self._exported)


class RelayExporter(SpanExporter):
    """What a Ray process's batch processor exports to: the batch as rows, to the actor."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._url = settings.tracing.otlp_url
        self._lock = threading.Lock()  # export (the batch thread) and shutdown (another)
        self._actor: Any = None
        self._sent: list[tuple[ray.ObjectRef, int]] = []  # on their way, with their span counts
        self._lost = 0  # spans dropped or refused since exporting last worked
        self._lost_ever = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        with self._lock:
            try:
                self._settle(0)
                if len(self._sent) >= IN_FLIGHT:
                    self._lose(len(spans), "the span exporter is behind")
                    return SpanExportResult.FAILURE
                if self._actor is None:
                    self._actor = named_actor(SpanExportActor, self._settings, SPANS)
                resource = dict(spans[0].resource.attributes)
                ref = self._actor.export.remote(self._url, resource, tracing.rows(spans))
            except Exception as exc:  # Ray shutting down, the actor not placeable: this batch
                self._lose(len(spans), f"{type(exc).__name__}: {exc}")
                return SpanExportResult.FAILURE
            self._sent.append((ref, len(spans)))
        return SpanExportResult.SUCCESS

    def _settle(self, timeout: float) -> None:
        """Take the outcomes of the batches that arrived within ``timeout`` seconds."""
        if not self._sent:
            return
        counts = dict(self._sent)
        done, pending = ray.wait(list(counts), num_returns=len(counts), timeout=timeout)
        self._sent = [(ref, counts[ref]) for ref in pending]
        for ref in done:
            try:
                exported = ray.get(ref, timeout=0)
            except Exception as exc:  # the actor died with it: look it up again next batch
                self._actor = None
                self._lose(counts[ref], f"{type(exc).__name__}: {exc}")
                continue
            if not exported:  # (not naming the URL, which may hold a password)
                self._lose(counts[ref], "the collector refused them")
            elif self._lost:
                log.warning("spans exported again; %d were lost before", self._lost)
                self._lost = 0

    def _lose(self, count: int, why: str) -> None:
        if not self._lost:
            log.warning("spans not exported (%s); dropping until exporting works again", why)
        self._lost += count
        self._lost_ever += count

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait up to ``timeout_millis`` for the batches on their way; whether all were
        exported. (OpenTelemetry's batch processor calls this only at its shutdown.)"""
        with self._lock:
            lost = self._lost_ever
            try:
                self._settle(timeout_millis / 1000)
            except Exception:
                return False
            return not self._sent and self._lost_ever == lost

    def shutdown(self) -> None:
        self.force_flush(int(SHUTDOWN_WAIT_SECONDS * 1000))
