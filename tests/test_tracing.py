"""Traces (issue 16, part 5): one request's spans — execution, each step, the model call and
the store writes — share its trace, wherever they ran; off, tracing costs no span and leaves no
trace fields on the record."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from linqra import tracing
from linqra.config import Settings, TracingSettings
from linqra.events.memory import MemoryEventBus
from linqra.system import System
from linqra.workflows.async_steps import (
    ASYNC_GROUP,
    ASYNC_TOPIC,
    BusAsyncStepQueue,
    process_async_step,
)

TEAM = "team-trace"
QUOTE_AND_ASK = {
    "name": "quote-and-ask",
    "steps": [
        {"step": 1, "target": "quotes-service", "action": "fetch",
         "intent": "/api/people/random"},
        {"step": 2, "target": "openai", "action": "generate", "stream": True,
         "payload": [{"role": "user", "content": "A saying by {{step1.result.fullName}}."}],
         "llmConfig": {"model": "gpt-4o"}},
        {"step": 3, "target": "transform",
         "params": {"expression": "length(@)", "input": "{{step2.result.choices[0].message.content}}"}},
    ],
}  # fmt: skip


@pytest.fixture
def settings(llm_settings: Settings) -> Settings:
    return llm_settings


def _recording(provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    """Tracing on with ``provider``, its finished spans kept in memory."""
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from _recording(TracerProvider())


def _hex(number: int, digits: int) -> str:
    return format(number, f"0{digits}x")


def _by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in finished}


def _parent_of(span: ReadableSpan, named: dict[str, ReadableSpan]) -> str | None:
    if span.parent is None:
        return None
    for name, other in named.items():
        if other.context.span_id == span.parent.span_id:
            return name
    return "?"


async def test_an_executions_spans_follow_the_request_through_steps_and_the_model_call(
    system: System, spans: InMemorySpanExporter
) -> None:
    wf = await system.workflows.create(TEAM, QUOTE_AND_ASK)
    with tracing.span("client request") as request:
        record = await system.runs.run_execution(TEAM, 60, workflow_id=wf.id)
    assert record["status"] == "COMPLETED", record.get("error")
    trace_id = _hex(request.get_span_context().trace_id, 32)
    assert record["trace_id"] == trace_id

    finished = spans.get_finished_spans()
    assert {_hex(s.context.trace_id, 32) for s in finished} == {trace_id}
    named = _by_name(finished)
    assert _parent_of(named["execution"], named) == "client request"
    for n in (1, 2, 3):
        assert _parent_of(named[f"step {n}"], named) == "execution"
    assert not [s.name for s in finished if s.name.startswith("run ")]  # a step's span covers it
    chat = named["chat gpt-4o"]
    assert _parent_of(chat, named) == "step 2"
    attributes: dict[str, Any] = dict(chat.attributes or {})
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert dict(named["execution"].attributes or {})["linqra.execution_id"] == record["id"]
    run = dict(named["step 1"].attributes or {})  # what the run was, on the step's span
    assert (run["linqra.status"], run["linqra.attempts"]) == ("COMPLETED", 1)
    step_ms = (named["step 1"].end_time - named["step 1"].start_time) / 1e6  # type: ignore[operator]
    assert run["linqra.executor"] == "io" and 0 < run["linqra.run_ms"] <= step_ms
    writes = [s for s in finished if s.name == "store write step runs"]
    assert writes and all(_parent_of(s, named) is not None for s in writes)
    # nothing secret or bulky on any span: ids, names and numbers only
    for span in finished:
        for value in (span.attributes or {}).values():
            assert "sk-" not in str(value) and len(str(value)) < 200


async def test_the_records_of_pure_steps_written_behind_have_their_store_write_span(
    system: System, spans: InMemorySpanExporter
) -> None:
    steps = [
        {"step": n, "target": "transform", "params": {"expression": "a", "input": {"a": n}}}
        for n in (1, 2, 3)
    ]
    wf = await system.workflows.create(TEAM, {"name": "pure-chain", "steps": steps})
    with tracing.span("client request"):
        record = await system.runs.run_execution(TEAM, 60, workflow_id=wf.id)
    assert record["status"] == "COMPLETED", record.get("error")
    finished = spans.get_finished_spans()
    named = _by_name(finished)
    writes = [s for s in finished if s.name == "store write step runs"]
    # the three end records, held back and written together: no step has a RUNNING record
    assert sum(dict(s.attributes or {})["linqra.records"] for s in writes) == 3
    assert all(_parent_of(s, named) not in (None, "?") for s in writes)


async def test_without_tracing_there_are_no_spans_and_no_trace_fields(system: System) -> None:
    tracing.uninstall()  # a Ray test's driver System may have turned it on in this process
    assert not tracing.enabled()
    assert tracing.span("x") is tracing.span("y")  # the one shared no-op, nothing made per call
    assert tracing.traceparent() is None
    wf = await system.workflows.create(TEAM, QUOTE_AND_ASK)
    record = await system.runs.run_execution(TEAM, 60, workflow_id=wf.id)
    assert record["status"] == "COMPLETED", record.get("error")
    assert "trace_id" not in record and "traceparent" not in record


def test_a_request_is_the_root_of_its_executions_trace_and_names_it(
    client: Any, spans: InMemorySpanExporter
) -> None:
    created = client.post("/v1/workflows", json={"name": "one", "steps": [
        {"step": 1, "target": "noop"}]})  # fmt: skip
    answer = client.post(f"/v1/workflows/{created.json()['id']}/execute?wait=true", json={})
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert answer.headers["x-trace-id"] == record["trace_id"]
    named = _by_name(spans.get_finished_spans())
    request = named["POST /v1/workflows/{workflow_id}/execute"]
    assert _hex(request.context.trace_id, 32) == record["trace_id"]
    assert dict(request.attributes or {})["http.response.status_code"] == 200
    assert _parent_of(named["execution"], named) == "POST /v1/workflows/{workflow_id}/execute"
    # a caller's own trace continues through the gateway (W3C traceparent)
    theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    answer = client.get("/v1/workflows", headers={"traceparent": theirs})
    assert answer.headers["x-trace-id"] == "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
def unsampled() -> Iterator[InMemorySpanExporter]:
    """Tracing on with ``tracing.sample_ratio: 0``: new traces are not recorded, a caller's
    sampled ``traceparent`` still is (the sampler is the one ``tracing.configure`` builds)."""
    yield from _recording(TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0))))


def test_an_unsampled_request_records_nothing_and_names_no_trace(
    client: Any, unsampled: InMemorySpanExporter
) -> None:
    created = client.post("/v1/workflows", json={"name": "one", "steps": [
        {"step": 1, "target": "noop"}, {"step": 2, "target": "noop"}]})  # fmt: skip
    answer = client.post(f"/v1/workflows/{created.json()['id']}/execute?wait=true", json={})
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert unsampled.get_finished_spans() == ()
    # no id that leads nowhere: the header and the record name only a trace that was kept
    assert "x-trace-id" not in answer.headers and "trace_id" not in record
    # a caller's unsampled traceparent is obeyed the same way, whatever the ratio
    theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    answer = client.get("/v1/workflows", headers={"traceparent": theirs})
    assert answer.status_code == 200 and "x-trace-id" not in answer.headers
    assert unsampled.get_finished_spans() == ()


def test_a_sampled_traceparent_records_the_whole_trace_at_a_ratio_of_zero(
    client: Any, unsampled: InMemorySpanExporter
) -> None:
    """How to trace one request while sampling keeps the rest cheap: send it a ``traceparent``
    whose flags say sampled (docs/observability.md, "Sampling")."""
    created = client.post("/v1/workflows", json={"name": "one", "steps": [
        {"step": 1, "target": "noop"}, {"step": 2, "target": "noop"}]})  # fmt: skip
    theirs = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    answer = client.post(
        f"/v1/workflows/{created.json()['id']}/execute?wait=true",
        json={},
        headers={"traceparent": theirs},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-trace-id"] == answer.json()["trace_id"] == theirs.split("-")[1]
    named = _by_name(unsampled.get_finished_spans())
    assert {"execution", "step 1", "step 2"} <= set(named)
    assert {_hex(s.context.trace_id, 32) for s in named.values()} == {theirs.split("-")[1]}
    assert _parent_of(named["step 2"], named) == "execution"


def test_under_an_unsampled_parent_no_span_is_made_and_its_context_carries_on(
    unsampled: InMemorySpanExporter,
) -> None:
    theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    with tracing.span("execution", parent=theirs):
        assert tracing.traceparent() == theirs  # no span of ours in between
        with tracing.span("vector search"):
            assert tracing.traceparent() == theirs
        assert tracing.open_span("chat gpt-4o") is None
        tracing.annotate({"linqra.status": "COMPLETED"})  # nothing to annotate: no error
    assert unsampled.get_finished_spans() == ()


def test_recording_and_the_context_read_follow_what_is_current(
    unsampled: InMemorySpanExporter,
) -> None:
    """``recording()`` says whether attributes would be kept; the context is read from
    OpenTelemetry's own variable, so what its API attaches is what tracing sees."""
    from opentelemetry import context as otel_context

    assert not tracing.recording()  # no span
    quiet = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with tracing.span("execution", parent=quiet):
        assert not tracing.recording()
        assert tracing._current_context() is otel_context.get_current()
    with tracing.span("execution", parent=traced):
        assert tracing.recording()
        token = otel_context.attach(otel_context.Context())  # the API's own attach
        assert tracing._current_context() is otel_context.get_current()
        assert not tracing.recording() and tracing.traceparent() is None
        otel_context.detach(token)
        assert tracing.recording()
    tracing.uninstall()
    assert not tracing.recording()


def test_a_malformed_traceparent_starts_a_trace_of_our_own(spans: InMemorySpanExporter) -> None:
    with tracing.span("GET request", parent="00-not-a-trace-01") as current:
        ours = tracing.traceparent()
    assert ours is not None and current.parent is None  # a root, sampled as any new trace
    assert tracing.trace_id(ours) == _hex(current.get_span_context().trace_id, 32)
    trace = "0af7651916cd43dd8448eb211c80319c"
    for flags in ("00", "zz", "1", "-1", "0g"):  # named only when its flags say it was recorded
        assert tracing.trace_id(f"00-{trace}-b7ad6b7169203331-{flags}") is None
    assert tracing.trace_id(f"00-{trace}-b7ad6b7169203331-01") == trace


def test_what_is_remembered_of_the_last_context_follows_every_change_of_it(
    unsampled: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``traceparent()`` and the sampled check remember the last context they were asked about,
    and the worker the last ``traceparent`` it was handed (issue 16's B17): the same one again is
    not parsed again, and a context entered, left, or handed in its turn is never answered for
    another."""
    parsed: list[str] = []
    extract = tracing._PROPAGATOR.extract

    def counted(carrier: dict[str, str], *args: Any, **kwargs: Any) -> Any:
        parsed.append(carrier["traceparent"])
        return extract(carrier, *args, **kwargs)

    monkeypatch.setattr(tracing._PROPAGATOR, "extract", counted)
    quiet = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert tracing.traceparent() is None
    for _ in range(2):  # each parent twice in a row (the second from what is kept), then the other
        for _ in range(2):
            with tracing.span("execution", parent=quiet) as remote:
                assert tracing.traceparent() == quiet
                assert tracing.open_span("chat") is None
                assert not remote.get_span_context().trace_flags.sampled
        for _ in range(2):
            with tracing.span("execution", parent=traced) as current:
                ours = tracing.traceparent()
                assert (
                    ours == f"00-{traced[3:35]}-{_hex(current.get_span_context().span_id, 16)}-01"
                )
                with tracing.span("vector search") as inner:
                    assert tracing.traceparent() == (
                        f"00-{traced[3:35]}-{_hex(inner.get_span_context().span_id, 16)}-01"
                    )
                assert tracing.traceparent() == ours
        assert tracing.traceparent() is None
    assert parsed == [quiet, traced, quiet, traced]  # once each time the parent changed
    names = [span.name for span in unsampled.get_finished_spans()]
    assert names == ["vector search", "execution"] * 4  # under the sampled parent, every time


def test_a_steps_work_elsewhere_is_carried_under_its_steps_span(
    spans: InMemorySpanExporter,
) -> None:
    """A worker makes no span of its own for a step (``tracing.carry``): the step's span is
    made current, and what the step records there is its child."""
    with tracing.span("step 1") as step:
        ours = tracing.traceparent()
        assert tracing.carry(ours) is tracing.carry(None)  # inline: already current, nothing to do
    assert ours is not None and tracing.traceparent() is None
    with tracing.carry(ours):  # a worker, handed the step's traceparent
        assert tracing.traceparent() == ours
        with tracing.span("vector search"):
            pass
        chat = tracing.open_span("chat gpt-4o")
        tracing.close_span(chat)
    assert tracing.traceparent() is None
    named = _by_name(spans.get_finished_spans())
    assert set(named) == {"step 1", "vector search", "chat gpt-4o"}
    for name in ("vector search", "chat gpt-4o"):
        assert _parent_of(named[name], named) == "step 1"
        assert named[name].context.trace_id == step.get_span_context().trace_id


async def test_an_async_steps_run_has_a_span_of_its_own_under_its_step(
    system: System, spans: InMemorySpanExporter
) -> None:
    """An ``async: true`` step's span ends when it is queued; the worker that takes it later
    shows its run as ``run <target>`` under it (a step run at once has no such span)."""
    bus = MemoryEventBus()
    worker = await bus.subscribe(ASYNC_TOPIC, ASYNC_GROUP, "worker-t")
    runner = system.runner("trace-async", async_queue=BusAsyncStepQueue(bus))
    definition = system.workflows.validate_definition(
        {"steps": [{"step": 1, "target": "noop", "async": True}, {"step": 2, "target": "noop"}]}
    )
    with tracing.span("client request"):
        ex = await system.workflows.new_execution(TEAM, definition=definition)
    await runner.submit(TEAM, ex["id"])
    assert (await runner.wait(TEAM, ex["id"], 30))["pending_async_steps"] == [1]
    taken = await worker.fetch(timeout=5)
    repo = system.workflows.executions
    status = await process_async_step(
        taken[0].event.payload, repo, system.registry, system.ctx, worker="worker-t"
    )
    assert status == "COMPLETED"
    named = _by_name(spans.get_finished_spans())
    assert _parent_of(named["run noop"], named) == "step 1"
    run = dict(named["run noop"].attributes or {})
    assert (run["linqra.status"], run["linqra.attempts"]) == ("COMPLETED", 1)
    assert len({s.context.trace_id for s in spans.get_finished_spans()}) == 1
    assert [s.name for s in spans.get_finished_spans()].count("run noop") == 1  # step 2: none


def test_spans_as_rows_are_encoded_for_otlp_as_the_spans_themselves() -> None:
    """What a Ray process hands the span exporter actor (``actors/tracing.py``): its spans as
    plain rows, pickled, rebuilt there — encoded for the collector byte for byte as the
    originals, Linqra's own spans and one with what they do not use (a ``tracestate``, an
    event, a link, a scope with a version and a schema)."""
    import pickle

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags, TraceState

    provider = TracerProvider()
    with contextlib.contextmanager(_recording)(provider) as spans:
        with tracing.span("request", kind=tracing.SpanKind.SERVER, attributes={"n": 1, "ok": True}):
            with tracing.span("step 1", attributes={"linqra.target": "noop", "ratios": [0.5, 1.5]}):
                tracing.annotate({"linqra.attempts": 2})
            with pytest.raises(ValueError), tracing.span("step 2"):
                raise ValueError("boom")
            outer = tracing.traceparent()
        with tracing.span("remote child", parent=outer):
            pass
        other = provider.get_tracer("other", "1.2.3", schema_url="https://x/1.26")
        remote = SpanContext(7, 9, True, TraceFlags(1), TraceState([("vendor", "v1")]))
        linked = SpanContext(8, 10, False, TraceFlags(0))
        with other.start_as_current_span(
            "with everything",
            context=trace.set_span_in_context(NonRecordingSpan(remote)),
            links=[Link(linked, {"why": "batch"})],
        ) as current:
            current.add_event("retry", {"attempt": 2})
    made = spans.get_finished_spans()
    assert len(made) == 5
    resource = dict(made[0].resource.attributes)

    moved = pickle.loads(pickle.dumps(tracing.rows(made)))
    again = tracing.rebuilt(resource, moved)

    assert encode_spans(again).SerializeToString() == encode_spans(made).SerializeToString()
    assert {s.name: s.status.status_code.name for s in again}["step 2"] == "ERROR"


def test_the_span_relay_logs_a_loss_as_it_starts_and_as_it_ends(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """How the batches a Ray process handed the span exporter actor land (``actors/tracing.py``):
    refused by the collector, lost with the actor, exported — the loss logged once as it starts,
    and once as exporting works again, with the count lost; a lost actor is looked up again."""
    import logging
    from concurrent.futures import Future

    from actors.tracing import RelayExporter

    traced = TracingSettings(otlp_url="http://127.0.0.1:9/v1/traces")  # never called here
    relay = RelayExporter(settings.model_copy(update={"tracing": traced}))
    relay._actor = "the actor's handle"

    def land(batch: int, count: int, outcome: bool | Exception) -> None:
        relay._sent[batch] = object()  # what export() keeps until the batch lands
        landed: Future[bool] = Future()
        if isinstance(outcome, Exception):
            landed.set_exception(outcome)
        else:
            landed.set_result(outcome)
        relay._landed(batch, count, landed)

    with caplog.at_level(logging.WARNING, logger="actors.tracing"):
        land(0, 5, False)
        land(1, 3, RuntimeError("the actor died"))
        assert relay._actor is None
        land(2, 2, True)
        land(3, 4, True)
    assert [r.getMessage() for r in caplog.records] == [
        "spans not exported (the collector refused them); dropping until exporting works again",
        "spans exported again; 8 were lost before",
    ]
    assert not relay._sent and relay.force_flush(timeout_millis=0)
