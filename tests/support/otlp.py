"""An OTLP/HTTP traces receiver for tests: ``POST /v1/traces`` with a protobuf
``ExportTraceServiceRequest`` (what OpenTelemetry's exporter sends), decoded with
``opentelemetry-proto`` and kept in memory as :class:`ReceivedSpan` rows."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from linqra.testing.servers import AppServer

__all__ = ["OtlpReceiver", "ReceivedSpan"]


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    pid: int | None  # the exporting process (its resource's process.pid)


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return None if kind is None else getattr(any_value, kind)


class OtlpReceiver(AppServer):
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        super().__init__(Starlette(routes=[Route("/v1/traces", self._traces, methods=["POST"])]))
        self.traces_url = f"{self.url}/v1/traces"

    async def _traces(self, request: Request) -> Response:
        body = ExportTraceServiceRequest.FromString(await request.body())
        rows = []
        for resource_spans in body.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    rows.append(
                        ReceivedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            pid=resource.get("process.pid"),
                        )
                    )
        with self._lock:
            self.spans.extend(rows)
        return Response(
            ExportTraceServiceResponse().SerializeToString(),
            media_type="application/x-protobuf",
        )

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]
