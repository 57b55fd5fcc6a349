"""A small OTLP/gRPC receiver of traces and metrics for tests: services export to it like to
a collector."""

from __future__ import annotations

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
        for resource_metrics in request.resource_metrics:
            service = service_of(resource_metrics)
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
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
        for resource_logs in request.resource_logs:
            service = service_of(resource_logs)
            for scope in resource_logs.scope_logs:
                for record in scope.log_records:
                    self.records.append(
                        (
                            service,
                            record.severity_text,
                            record.body.string_value,
                            record.trace_id.hex(),
                        )
                    )
        return logs_service_pb2.ExportLogsServiceResponse()


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = service_of(resource_spans)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
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
