"""Traces: OpenTelemetry spans of a request through the gateway, the runner, the step workers
and the calls they make (issue 16, part 5; docs/observability.md "Traces").

Off by default, at no cost: until :func:`configure` installs a provider (``tracing.otlp_url``
set) or a test calls :func:`install`, :func:`span` hands back one shared no-op context manager
and :func:`traceparent` ``None`` — no OpenTelemetry object is made per call.

The context crosses process boundaries as a W3C ``traceparent`` string carried in what already
crosses them: the execution record (``traceparent``, written by the request that created it, read
by whichever runner claims it — also after a restart) and each :class:`~linqra.steps.base.StepCall`
(``trace``, read by the I/O or CPU worker that runs it). Ray's own tracing hook is not used: it
wraps every actor call of the process, traced or not, and cannot follow a run through the store.

The SDK's provider is this module's own, not OpenTelemetry's global one (which can be set once
per process): the spans Linqra makes are exported where the settings say, whatever else the
process has configured.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from linqra._config_sections import TracingSettings

__all__ = [
    "SpanKind",
    "SpanRow",
    "annotate",
    "carry",
    "close_span",
    "configure",
    "enabled",
    "install",
    "open_span",
    "otlp_exporter",
    "rebuilt",
    "recording",
    "rows",
    "span",
    "trace_id",
    "traceparent",
    "uninstall",
]

_PROPAGATOR = TraceContextTextMapPropagator()
_OFF: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None
_configured: str | None = None  # the OTLP URL this process exports to


def enabled() -> bool:
    return _tracer is not None


def configure(settings: TracingSettings, *, exporter: SpanExporter | None = None) -> None:
    """Export this process's spans to ``settings.otlp_url`` (once per process and URL); nothing
    when it is empty. ``exporter``: what the batches go to instead of an OTLP/HTTP exporter in
    this process (a Ray process hands them to the cluster's span exporter actor,
    ``actors/tracing.py``)."""
    global _configured
    if not settings.otlp_url or _configured == settings.otlp_url:
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": settings.service_name, "process.pid": os.getpid()}
        ),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    if exporter is None:
        exporter = otlp_exporter(settings.otlp_url)
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=settings.export_delay_ms)
    )
    install(provider)
    _configured = settings.otlp_url


def otlp_exporter(url: str) -> SpanExporter:
    """OpenTelemetry's OTLP/HTTP exporter to ``url``, as this process or the cluster's span
    exporter actor (``actors/tracing.py``) posts batches with it."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=url, timeout=5)


def install(provider: TracerProvider) -> None:
    """Record spans with ``provider`` from now on (tests pass one with an in-memory exporter)."""
    global _tracer, _provider
    _provider, _tracer = provider, provider.get_tracer("linqra")


def uninstall() -> None:
    """Back to no tracing; spans still buffered are exported first."""
    global _tracer, _provider, _configured
    provider, _provider, _tracer, _configured = _provider, None, None, None
    if provider is not None:
        provider.force_flush()


class _Span:
    """The ``with`` block of :func:`span`: the span started, made current, ended — by hand
    rather than through ``start_as_current_span`` (three nested context managers: half the cost
    of a span made in the runner's hot path, issue 16's B17)."""

    __slots__ = ("_span", "_token")

    def __init__(self, current: trace.Span) -> None:
        self._span = current
        self._token: object = None

    def __enter__(self) -> trace.Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, kind: type[BaseException] | None, exc: object, tb: object) -> None:
        otel_context.detach(self._token)  # type: ignore[arg-type]
        if kind is not None:
            self._span.set_status(Status(StatusCode.ERROR, kind.__name__))
        self._span.end()


class _Carried:
    """A parent's context made current, no span made: the ``with`` block of :func:`span`
    under a parent that is not sampled (what runs inside knows the trace is not recorded and
    carries that on), and of :func:`carry`."""

    __slots__ = ("_context", "_span", "_token")

    def __init__(self, context: otel_context.Context, parent: trace.Span) -> None:
        self._context, self._span = context, parent
        self._token: object = None

    def __enter__(self) -> trace.Span:
        self._token = otel_context.attach(self._context)
        return self._span

    def __exit__(self, kind: type[BaseException] | None, exc: object, tb: object) -> None:
        otel_context.detach(self._token)  # type: ignore[arg-type]


def _context_reader() -> Callable[[], otel_context.Context]:
    """What reads the current context: OpenTelemetry's own context variable where its runtime
    context keeps the context in one (the default, ``contextvars``), else its API, two calls
    deeper. It is read four times a step in the runner; with :func:`recording` in front of a
    step's attributes, what tracing does for a step of a trace that is not recorded went from
    1.6 to 1.05 µs (a tight loop of span, ``traceparent``, annotation and carry)."""
    variable = getattr(getattr(otel_context, "_RUNTIME_CONTEXT", None), "_current_context", None)
    if isinstance(variable, ContextVar):
        return variable.get
    return otel_context.get_current


_current_context = _context_reader()


_Known = tuple[otel_context.Context | None, bool, str | None]
_known: _Known = (None, False, None)
"""The last context asked about, whether its trace is unsampled, and its ``traceparent``. A
context is immutable (entering or leaving a span makes another), and every step of a trace
that is not sampled runs in its execution's: asked once a step in the runner, working it out
each time was half of what carrying such a trace cost (issue 16's B17). One tuple, so a thread
reads a matching three."""


def _current() -> _Known:
    global _known
    context = _current_context()
    known = _known
    if known[0] is context:
        return known
    current = trace.get_current_span(context).get_span_context()
    if current.is_valid:
        # what the W3C propagator's inject writes, without its carrier and setter
        parent = f"00-{current.trace_id:032x}-{current.span_id:016x}-{current.trace_flags:02x}"
        known = (context, not current.trace_flags.sampled, parent)
    else:
        known = (context, False, None)
    _known = known
    return known


def _unsampled() -> bool:
    """Whether the current span belongs to a trace that is not recorded (then neither is any
    child: the sampler is parent-based)."""
    return _current()[1]


_Extracted = tuple[str, otel_context.Context, trace.Span, bool]
_extracted: _Extracted | None = None
"""The last ``traceparent`` a worker was handed: its context, its (remote) span and whether its
trace is unsampled. A trace that is not sampled hands each of its steps the same one (parsing
it was the other half, in the worker)."""


def _extract(parent: str) -> _Extracted:
    global _extracted
    last = _extracted
    if last is not None and last[0] == parent:
        return last
    context = _PROPAGATOR.extract({"traceparent": parent})
    remote = trace.get_current_span(context)
    flags = remote.get_span_context()
    last = _extracted = (parent, context, remote, flags.is_valid and not flags.trace_flags.sampled)
    return last


def span(
    name: str,
    *,
    parent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> contextlib.AbstractContextManager[Any]:
    """A span around the ``with`` block, the current one inside it: a child of ``parent`` (a
    ``traceparent``) when given, else of the current span. A no-op while tracing is off.
    Attributes are bounded by the caller: ids, names, numbers — never secrets or payloads.

    Below the root of a trace that is not sampled (by ``tracing.sample_ratio``, or a caller's
    ``traceparent`` with flags ``00``) no span is made, only the parent's context carried: a
    child of an unsampled span would be dropped anyway, and making it was most of what tracing
    cost an unsampled step (issue 16's B17)."""
    tracer = _tracer
    if tracer is None:
        return _OFF
    if parent:
        _, context, remote, unsampled = _extract(parent)
        if unsampled:
            return _Carried(context, remote)
    else:
        if _unsampled():
            return _OFF  # the current context already says "not sampled"
        context = None
    return _Span(tracer.start_span(name, context=context, kind=kind, attributes=attributes))


def carry(parent: str | None) -> contextlib.AbstractContextManager[Any]:
    """``parent`` (a ``traceparent``) made the current context around the ``with`` block, no
    span of its own: a step's work in a worker happens under the runner's span for the step,
    and what the work records (a model call, a vector search) becomes that span's child. A
    no-op while tracing is off, without a parent, or where ``parent`` is already current (a
    step run inline, in the runner's own span).

    A worker used to make a span of its own for each step ("run <target>"): half of what a
    recorded trace cost a Ray-task step, with its export the only OpenTelemetry work of a worker
    whose steps call no model (issue 16's B17). What it showed goes on the step's span instead
    (``linqra.executor``, ``linqra.attempts``, ``linqra.run_ms``)."""
    if _tracer is None or not parent or _current()[2] == parent:
        return _OFF
    _, context, remote, _ = _extract(parent)
    return _Carried(context, remote)


def traceparent() -> str | None:
    """The current span as a W3C ``traceparent`` (to carry to another process), else ``None``."""
    if _tracer is None:
        return None
    return _current()[2]


def trace_id(parent: str | None) -> str | None:
    """The 32-hex-digit trace id of a ``traceparent`` whose trace is recorded (sampled): the
    id to look a trace up by, so none for a trace that was not kept."""
    if not parent:
        return None
    parts = parent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or not _sampled(parts[3]):
        return None
    return parts[1]


def _sampled(flags: str) -> bool:
    """The ``sampled`` bit of a ``traceparent``'s flags (its last field, two hex digits)."""
    if len(flags) != 2 or not all(c in "0123456789abcdef" for c in flags):
        return False
    return int(flags, 16) & 1 == 1


def recording() -> bool:
    """Whether there is a current span and its trace is recorded: what a caller checks before
    building attributes for :func:`annotate`, which would drop them otherwise."""
    if _tracer is None:
        return False
    _, unsampled, parent = _current()
    return parent is not None and not unsampled


def annotate(attributes: Mapping[str, Any]) -> None:
    """Add ``attributes`` to the current span (nothing while tracing is off, or in a trace
    that is not recorded: its spans drop them)."""
    if recording():
        trace.get_current_span().set_attributes(dict(attributes))


def open_span(name: str, *, attributes: Mapping[str, Any] | None = None) -> Any | None:
    """A span started now as a child of the current one but not made current: for work that
    outlives a ``with`` block of its own (a stream's generator yields between its parts, and a
    context entered in one part cannot be left in another). End it with :func:`close_span`;
    ``None`` while tracing is off."""
    tracer = _tracer
    if tracer is None or _unsampled():
        return None
    return tracer.start_span(name, attributes=attributes)


def close_span(
    opened: Any | None,
    *,
    error: BaseException | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> None:
    """End a span from :func:`open_span` (marked an error when ``error`` is given)."""
    if opened is None:
        return
    if attributes:
        opened.set_attributes(dict(attributes))
    if error is not None:
        opened.set_status(Status(StatusCode.ERROR, type(error).__name__))
    opened.end()


# -- Spans as plain rows: to be exported by another process ---------------------------------
class SpanRow(NamedTuple):
    """A finished span as plain values (:func:`rows`), cheap to pickle: what OTLP carries of
    it, except the counts of attributes, events and links the SDK dropped over its limits
    (Linqra's spans carry a dozen attributes at most, against the SDK's 128, and no events or
    links of their own)."""

    name: str
    trace_id: int
    span_id: int
    flags: int
    trace_state: str
    """The span's W3C ``tracestate`` header value (empty: none)."""
    parent: tuple[int, bool] | None
    """The parent's span id and whether it was remote (came from another process)."""
    kind: int
    start: int | None
    end: int | None
    attributes: dict[str, Any]
    status: tuple[int, str | None]
    events: list[tuple[str, int, dict[str, Any]]]
    links: list[tuple[int, int, int, bool, dict[str, Any]]]
    scope: tuple[str, str | None, str | None]
    """The instrumentation scope's name, version and schema URL."""


def rows(spans: Sequence[ReadableSpan]) -> list[SpanRow]:
    """``spans`` as :class:`SpanRow` values. Encoding a span for OTLP (protobuf, in Python)
    costs ≈ 40 µs and runs on a thread of the process that made it, taking the GIL from its
    event loop; this costs ≈ 3 µs with pickling, and :func:`rebuilt` gives the spans back to be
    encoded elsewhere (issue 16's B17)."""
    out: list[SpanRow] = []
    for s in spans:
        context, parent, status, scope = s.context, s.parent, s.status, s.instrumentation_scope
        out.append(
            SpanRow(
                s.name,
                context.trace_id,
                context.span_id,
                int(context.trace_flags),
                context.trace_state.to_header() if context.trace_state else "",
                (parent.span_id, parent.is_remote) if parent is not None else None,
                s.kind.value,
                s.start_time,
                s.end_time,
                dict(s.attributes or {}),
                (status.status_code.value, status.description),
                [(e.name, e.timestamp, dict(e.attributes or {})) for e in s.events],
                [_link(k) for k in s.links],
                (scope.name, scope.version, scope.schema_url) if scope else ("linqra", None, None),
            )
        )
    return out


def _link(link: Any) -> tuple[int, int, int, bool, dict[str, Any]]:
    context = link.context
    flags = int(context.trace_flags)
    return (
        context.trace_id,
        context.span_id,
        flags,
        context.is_remote,
        dict(link.attributes or {}),
    )


def rebuilt(resource: Mapping[str, Any], made: Sequence[SpanRow]) -> list[ReadableSpan]:
    """The spans of :func:`rows`, made by one process whose resource was ``resource``."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, TraceFlags, TraceState

    source = Resource(dict(resource))
    spans = []
    for row in made:
        flags = TraceFlags(row.flags)
        state = TraceState.from_header([row.trace_state]) if row.trace_state else None
        parent = row.parent
        spans.append(
            ReadableSpan(
                row.name,
                context=SpanContext(row.trace_id, row.span_id, False, flags, state),
                parent=(
                    SpanContext(row.trace_id, parent[0], parent[1], flags)
                    if parent is not None
                    else None
                ),
                resource=source,
                attributes=row.attributes,
                events=[Event(n, a, timestamp=t) for n, t, a in row.events],
                links=[
                    Link(SpanContext(t, i, remote, TraceFlags(f)), a)
                    for t, i, f, remote, a in row.links
                ],
                kind=SpanKind(row.kind),
                status=Status(StatusCode(row.status[0]), row.status[1]),
                start_time=row.start,
                end_time=row.end,
                instrumentation_scope=InstrumentationScope(*row.scope),
            )
        )
    return spans
