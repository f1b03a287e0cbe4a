"""Traces across Ray (issue 16, part 5): one execution's spans come from the driver, the runner
actor, an I/O-pool actor and a CPU-step worker, carry one trace id, chain parent to child, and
reach a collector over OTLP/HTTP (the session cluster exports to ``otlp_receiver``: the driver
from its own process, the cluster's processes through the span exporter actor)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

import pytest
import ray
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actors.tracing import IN_FLIGHT, SPANS, RelayExporter
from linqra import tracing
from linqra.config import Settings, TracingSettings
from linqra.system import System
from linqra.testing.servers import free_port
from tests.support.otlp import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.ray

TEAM = "team-trace-ray"
STEPS = [
    {"step": 1, "target": "quotes-service", "action": "fetch", "intent": "/api/people/random"},
    {"step": 2, "target": "transform", "executor": "task",
     "params": {"expression": "fullName", "input": "{{step1.result}}"}},
    {"step": 3, "target": "openai", "action": "generate",
     "payload": [{"role": "user", "content": "A saying by {{step2.result}}."}],
     "llmConfig": {"model": "gpt-4o"}},
    {"step": 4, "target": "openai", "action": "generate", "executor": "task",
     "payload": [{"role": "user", "content": "Another by {{step2.result}}."}],
     "llmConfig": {"model": "gpt-4o"}},
]  # fmt: skip
EXPECTED = {"client request", "execution", "step 1", "step 2", "step 3", "step 4", "chat gpt-4o"}


@pytest.fixture(scope="module")
def cluster(ray_cluster: Any, ray_settings: Settings) -> Settings:
    from actors.cluster import start_cluster

    started = start_cluster(ray_settings)
    # a tracing cluster's span exporter is one of its actors, started with the others
    assert started.spans == ray.get_actor(SPANS, namespace=ray_settings.ray.namespace)
    return ray_settings


async def _open(settings: Settings) -> System:
    from actors.events import open_bus
    from actors.handles import RayLauncher

    return await System.open(
        settings, launcher=RayLauncher(settings), events=open_bus(settings), init=True
    )


def test_an_executions_spans_come_from_each_process_and_reach_the_collector(
    cluster: Settings, otlp_receiver: OtlpReceiver
) -> None:
    async def run() -> tuple[dict[str, Any], str]:
        system = await _open(cluster)  # this process exports to the collector too
        try:
            wf = await system.workflows.create(TEAM, {"name": "traced", "steps": STEPS})
            with tracing.span("client request"):
                root = tracing.trace_id(tracing.traceparent())
                record = await system.runs.run_execution(TEAM, 90, workflow_id=wf.id)
            assert root is not None
            return record, root
        finally:
            await system.close()

    record, trace_id = asyncio.run(run())
    assert record["status"] == "COMPLETED", record.get("error")
    assert record["trace_id"] == trace_id

    deadline = time.monotonic() + 60
    while True:  # both model calls' spans too: one made by each kind of worker
        received = [s for s in otlp_receiver.of_trace(trace_id) if s.name in EXPECTED]
        missing = EXPECTED - {s.name for s in received}
        chats = [s for s in received if s.name == "chat gpt-4o"]
        if not missing and len(chats) == 2:
            break
        assert time.monotonic() < deadline, f"spans never exported: {sorted(missing)}, {chats}"
        time.sleep(0.05)
    spans = {s.name: s for s in received if s.name != "chat gpt-4o"}
    by_id = {s.span_id: s for s in received}

    def parent(span: ReceivedSpan) -> ReceivedSpan:
        found = by_id.get(span.parent_id)
        assert found is not None, f"{span.name}'s parent was not exported"
        return found

    assert parent(spans["execution"]).name == "client request"
    for n in (1, 2, 3, 4):
        assert parent(spans[f"step {n}"]).name == "execution"
    everything = otlp_receiver.of_trace(trace_id)
    assert not [s.name for s in everything if s.name.startswith("run ")]  # a step's span covers it
    chat_of = {parent(chat).name: chat for chat in chats}  # each under its own step's span
    assert set(chat_of) == {"step 3", "step 4"}

    driver, runner = os.getpid(), spans["execution"].pid
    io_worker, cpu_worker = chat_of["step 3"].pid, chat_of["step 4"].pid
    assert spans["client request"].pid == driver
    assert {spans[f"step {n}"].pid for n in (1, 2, 3, 4)} == {runner}
    assert len({driver, runner, io_worker, cpu_worker}) == 4, "four processes, one trace"
    # the cluster's processes exported theirs through the span exporter actor (actors/tracing.py)
    exporter = ray.get_actor(SPANS, namespace=cluster.ray.namespace)
    while not {runner, io_worker, cpu_worker} <= set(ray.get(exporter.exported.remote())):
        assert time.monotonic() < deadline, ray.get(exporter.exported.remote())
        time.sleep(0.05)
    step2 = spans["step 2"].attributes
    assert (step2["linqra.executor"], step2["linqra.status"]) == ("task", "COMPLETED")


def test_the_span_exporter_is_started_only_for_a_cluster_that_traces(cluster: Settings) -> None:
    from actors.tracing import start_span_exporter

    untraced = cluster.model_copy(
        update={
            "tracing": TracingSettings(),
            "ray": cluster.ray.model_copy(update={"namespace": "trace-untraced"}),
        }
    )
    assert start_span_exporter(untraced) is None
    with pytest.raises(ValueError):
        ray.get_actor(SPANS, namespace="trace-untraced")
    traced = untraced.model_copy(
        update={
            "tracing": TracingSettings(otlp_url=f"http://127.0.0.1:{free_port()}/v1/traces"),
            "ray": cluster.ray.model_copy(update={"namespace": "trace-traced"}),
        }
    )
    made = start_span_exporter(traced)
    assert made is not None
    try:
        assert ray.get(made.exported.remote(), timeout=60) == {}
        assert start_span_exporter(traced) == made  # found, not made again
    finally:
        ray.kill(made)


def test_a_collector_that_is_down_costs_the_span_makers_no_wait_and_no_memory(
    cluster: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The span exporter actor retries a collector that refuses connections (OpenTelemetry's
    exporter backs off for up to its timeout); a process whose batches are still on their way
    drops the next ones at once rather than queue them without end."""
    down = cluster.model_copy(
        update={
            "tracing": TracingSettings(otlp_url=f"http://127.0.0.1:{free_port()}/v1/traces"),
            "ray": cluster.ray.model_copy(update={"namespace": "trace-collector-down"}),
        }
    )
    kept = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(kept))
    provider.get_tracer("test").start_span("made").end()
    batch = kept.get_finished_spans()

    relay = RelayExporter(down)
    try:
        with caplog.at_level(logging.WARNING, logger="actors.tracing"):
            results = [relay.export(batch) for _ in range(IN_FLIGHT + 3)]
        # the first IN_FLIGHT handed over, none waited for (the actor backs off for seconds
        # on each), the rest dropped at once — and said so, once
        assert results == [SpanExportResult.SUCCESS] * IN_FLIGHT + [SpanExportResult.FAILURE] * 3
        assert [r.getMessage() for r in caplog.records] == [
            "spans not exported (the span exporter is behind); dropping until exporting works again"
        ]
        assert relay.force_flush(timeout_millis=100) is False  # the first still retrying
    finally:
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(SPANS, namespace="trace-collector-down"))
