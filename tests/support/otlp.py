"""A small OTLP/gRPC receiver of traces and metrics for tests: services export to it like to
a collector."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from tests.support.metrics import Point


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind
    trace_id: str
    span_id: str
    parent_span_id: str
    links: tuple[tuple[str, str], ...] = ()  # (trace id, span id) of each link


def service_of(resource_spans: Any) -> str:
    """The `service.name` of the process that exported these spans or metrics."""
    return next(
        (
            a.value.string_value
            for a in resource_spans.resource.attributes
            if a.key == "service.name"
        ),
        "",
    )


def each(resources: Iterable[Any], scopes: str, items: str) -> Iterator[tuple[str, Any]]:
    """(service, item) for every span, metric or log record of an export request's
    resources (`scopes`, `items`: the field names of the signal, e.g. scope_spans, spans)."""
    for resource in resources:
        service = service_of(resource)
        for scope in getattr(resource, scopes):
            for item in getattr(scope, items):
                yield service, item


def _value(attribute: KeyValue) -> object:
    value = attribute.value
    return getattr(value, value.WhichOneof("value") or "string_value")


def _number(kind: str, point: Any) -> float:
    if kind == "histogram":
        return float(point.count)
    return float(point.as_int if point.WhichOneof("value") == "as_int" else point.as_double)


class MetricsReceiver(metrics_service_pb2_grpc.MetricsServiceServicer):
    """Data points by (service, metric name); a histogram's point is its count."""

    def __init__(self) -> None:
        self.points: dict[tuple[str, str], list[Point]] = {}

    async def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: Any
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        for service, metric in each(request.resource_metrics, "scope_metrics", "metrics"):
            kind = metric.WhichOneof("data") or "gauge"
            for p in getattr(metric, kind).data_points:
                self.points.setdefault((service, metric.name), []).append(
                    Point({a.key: _value(a) for a in p.attributes}, _number(kind, p))
                )
        return metrics_service_pb2.ExportMetricsServiceResponse()


class LogsReceiver(logs_service_pb2_grpc.LogsServiceServicer):
    """Log records as (service, severity, body, trace id)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, str, str]] = []

    async def Export(
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: Any
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        for service, record in each(request.resource_logs, "scope_logs", "log_records"):
            self.records.append(
                (service, record.severity_text, record.body.string_value, record.trace_id.hex())
            )
        return logs_service_pb2.ExportLogsServiceResponse()


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for service, span in each(request.resource_spans, "scope_spans", "spans"):
            self.spans.append(
                ReceivedSpan(
                    service,
                    span.name,
                    span.kind,
                    span.trace_id.hex(),
                    span.span_id.hex(),
                    span.parent_span_id.hex(),
                    tuple((k.trace_id.hex(), k.span_id.hex()) for k in span.links),
                )
            )
        return trace_service_pb2.ExportTraceServiceResponse()


@dataclass
class Receivers:
    server: grpc.aio.Server
    traces: Receiver
    metrics: MetricsReceiver
    logs: LogsReceiver


async def start_receiver(port: int) -> tuple[grpc.aio.Server, Receiver]:
    receivers = await start_receivers(port)
    return receivers.server, receivers.traces


async def start_receivers(port: int) -> Receivers:
    """Traces, metrics and logs on one OTLP/gRPC port."""
    receiver, metrics, logs = Receiver(), MetricsReceiver(), LogsReceiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        receiver, server
    )
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        metrics, server
    )
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        logs, server
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return Receivers(server, receiver, metrics, logs)
