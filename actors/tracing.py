"""Spans of the cluster's processes exported from a process of their own: the span exporter
actor (issue 16's B17; docs/observability.md, "Traces").

Exporting over OTLP/HTTP in the process that made the spans means encoding them there, in
Python (≈ 40 µs a span), on OpenTelemetry's batch thread — which takes the GIL from the event
loop of a runner stepping through a chain. A Ray process instead hands each batch, as plain rows
(:func:`linqra.tracing.rows`, ≈ 3 µs a span), to the cluster's ``linqra-spans`` actor, which
rebuilds the spans and exports them with OpenTelemetry's own OTLP exporter; the collector sees
Linqra's spans as the process would have sent them, each with the resource (``process.pid``) of
the process that made it. ``start_cluster`` creates it when ``tracing.otlp_url`` is set
(:func:`start_span_exporter`; only a cluster that traces needs it), so that its process starts
with the others rather than under a first traced request; a process's first batch creates it
where it is missing (a cluster started before tracing was configured). It is one synchronous
actor, exporting a batch at a time, to the URL each batch names (a redeploy with another
``tracing.otlp_url`` is followed at once).

Tracing stays best-effort, as in the SDK (whose full queue drops spans): a process with
:data:`IN_FLIGHT` batches still on their way (the collector down, the actor restarting) drops the
next ones, so an outage costs it no wait and at most that many batches of memory. What is
dropped or refused is logged when it starts and when exporting works again, not once a batch.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import ray
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from actors.handles import named_actor
from linqra import tracing
from linqra.config import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["IN_FLIGHT", "SPANS", "RelayExporter", "SpanExportActor", "start_span_exporter"]

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
            exporter = self._exporters[url] = tracing.otlp_exporter(url)
        if exporter.export(tracing.rebuilt(resource, made)) is not SpanExportResult.SUCCESS:
            return False
        pid = resource.get("process.pid")
        if isinstance(pid, int):
            self._exported[pid] = self._exported.get(pid, 0) + len(made)
        return True

    def exported(self) -> dict[int, int]:
        """How many spans of each process (by ``process.pid``) it has exported."""
        return dict(self._exported)


def start_span_exporter(settings: Settings) -> Any | None:
    """The cluster's span exporter actor, created if missing, when ``settings`` trace (an
    ``otlp_url``); else ``None``."""
    if not settings.tracing.otlp_url:
        return None
    return named_actor(SpanExportActor, settings, SPANS)


class RelayExporter(SpanExporter):
    """What a Ray process's batch processor exports to: the batch as rows, to the actor. Each
    batch's outcome comes back as a callback on Ray's side (``ObjectRef.future``), not through
    ``ray.get``, which Ray warns about in an async actor's process whatever the thread."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._url = settings.tracing.otlp_url
        self._changed = threading.Condition()  # the batch thread, Ray's callbacks, a shutdown
        self._actor: Any = None
        self._sent: dict[int, ray.ObjectRef] = {}  # on their way (kept until they land)
        self._batches = itertools.count()
        self._lost = 0  # spans dropped or refused since exporting last worked
        self._lost_ever = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        with self._changed:
            if len(self._sent) >= IN_FLIGHT:
                self._lose(len(spans), "the span exporter is behind")
                return SpanExportResult.FAILURE
            try:
                if self._actor is None:
                    self._actor = start_span_exporter(self._settings)
                resource = dict(spans[0].resource.attributes)
                ref = self._actor.export.remote(self._url, resource, tracing.rows(spans))
                landed = ref.future()
            except Exception as exc:  # Ray shutting down, the actor not placeable: this batch
                self._lose(len(spans), f"{type(exc).__name__}: {exc}")
                return SpanExportResult.FAILURE
            batch = next(self._batches)
            self._sent[batch] = ref
        # outside the lock: a batch already landed calls back at once, in this thread
        landed.add_done_callback(functools.partial(self._landed, batch, len(spans)))
        return SpanExportResult.SUCCESS

    def _landed(self, batch: int, count: int, landed: Future[bool]) -> None:
        with self._changed:
            del self._sent[batch]
            try:
                exported = landed.result()
            except Exception as exc:  # the actor died with it: look it up again next batch
                self._actor = None
                self._lose(count, f"{type(exc).__name__}: {exc}")
            else:
                if not exported:  # (not naming the URL, which may hold a password)
                    self._lose(count, "the collector refused them")
                elif self._lost:
                    log.warning("spans exported again; %d were lost before", self._lost)
                    self._lost = 0
            self._changed.notify_all()

    def _lose(self, count: int, why: str) -> None:
        if not self._lost:
            log.warning("spans not exported (%s); dropping until exporting works again", why)
        self._lost += count
        self._lost_ever += count

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait up to ``timeout_millis`` for the batches on their way; whether all were
        exported. (OpenTelemetry's batch processor calls this only at its shutdown.)"""
        with self._changed:
            lost = self._lost_ever
            landed = self._changed.wait_for(lambda: not self._sent, timeout_millis / 1000)
            return landed and self._lost_ever == lost

    def shutdown(self) -> None:
        self.force_flush(int(SHUTDOWN_WAIT_SECONDS * 1000))
