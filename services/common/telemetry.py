"""OpenTelemetry setup: one tracer provider and one meter provider per process.

Traces, metrics and log records go over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (logs
also stay on stderr as JSON lines); metrics are also served at GET /metrics in Prometheus'
format when <SERVICE>_METRICS_PORT is set.

Instrumentation of grpc.aio (server and client) and asyncpg patches the libraries, so it must
run before any server, channel or pool is created: `setup_telemetry` is the first thing a
process does after reading its settings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.grpc import (
    GrpcAioInstrumentorClient,
    GrpcAioInstrumentorServer,
    filters,
)
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.common.settings import TelemetrySettings

log = logging.getLogger(__name__)
_instrumented = False
_PROPAGATOR = TraceContextTextMapPropagator()


def _resource(settings: TelemetrySettings) -> Resource:
    return Resource.create(
        {
            "service.name": settings.service,
            "service.namespace": "points",
            "service.version": settings.version,
            "deployment.environment.name": settings.environment,
        }
    )


def build_provider(
    settings: TelemetrySettings, extra_processors: tuple[SpanProcessor, ...] = ()
) -> TracerProvider:
    provider = TracerProvider(resource=_resource(settings))
    if settings.otlp_endpoint:
        # Imported lazily: the exporter pulls in a gRPC client nobody needs without a collector.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.otlp_endpoint)))
    for processor in extra_processors:
        provider.add_span_processor(processor)
    return provider


def build_meter_provider(
    settings: TelemetrySettings, extra_readers: tuple[MetricReader, ...] = ()
) -> MeterProvider:
    readers = list(extra_readers)
    if settings.metrics_port is not None:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.metrics_host)
        readers.append(PrometheusMetricReader())
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        # Every OTEL_METRIC_EXPORT_INTERVAL ms (60 s by default).
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(settings.otlp_endpoint)))
    return MeterProvider(resource=_resource(settings), metric_readers=readers)


def instrument_libraries() -> None:
    """Patch grpc.aio and asyncpg once per process (idempotent)."""
    global _instrumented
    if _instrumented:
        return
    # HTTP metrics and spans by the stable semantic conventions (http.server.request.duration
    # in seconds, http.route), read by the FastAPI instrumentation when it first runs.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    # Health checks are probes (load balancers, Kubernetes, /readyz), polled all day: a trace
    # each would bury the requests. They are still counted in rpc.server.call.duration.
    not_health = filters.negate(filters.health_check())
    GrpcAioInstrumentorServer(filter_=not_health).instrument()
    GrpcAioInstrumentorClient(filter_=not_health).instrument()
    AsyncPGInstrumentor().instrument()
    _instrumented = True


class Telemetry:
    """The process' providers, shut down (flushed) together when the process stops."""

    def __init__(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        logger_provider: LoggerProvider | None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.logger_provider = logger_provider

    def shutdown(self) -> None:
        self.meter_provider.shutdown()
        self.tracer_provider.shutdown()
        if self.logger_provider is not None:
            self.logger_provider.shutdown()


def setup_telemetry(settings: TelemetrySettings) -> Telemetry:
    """Install the process-wide tracer and meter providers (and log export over OTLP), and
    instrument libraries. Call after `configure_logging`."""
    tracer_provider = _install_tracer_provider(settings)
    meter_provider = build_meter_provider(settings)
    metrics.set_meter_provider(meter_provider)
    instrument_libraries()
    return Telemetry(tracer_provider, meter_provider, _export_logs(settings))


def _export_logs(settings: TelemetrySettings) -> LoggerProvider | None:
    """Send log records to the collector too, with their trace and span ids."""
    if not settings.otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

    provider = LoggerProvider(resource=_resource(settings))
    provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(settings.otlp_endpoint))
    )
    logging.getLogger().addHandler(LoggingHandler(logger_provider=provider))
    return provider


def _install_tracer_provider(settings: TelemetrySettings) -> TracerProvider:
    """The global provider can be set only once per process; when one is already installed (an
    embedding test harness did it), it is kept and returned so every server shares it."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = build_provider(settings)
    trace.set_tracer_provider(provider)
    if settings.otlp_endpoint:
        log.info("exporting traces and metrics", extra={"otlp_endpoint": settings.otlp_endpoint})
    return provider


def current_traceparent() -> str | None:
    """The current span as a W3C `traceparent`, to keep with work done later (None outside a
    sampled trace)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def links_to(traceparents: Iterable[str | None], limit: int = 32) -> list[trace.Link]:
    """Span links to the stored traces (a span keeps few links: at most `limit`)."""
    links: list[trace.Link] = []
    for value in dict.fromkeys(t for t in traceparents if t):
        carrier = _PROPAGATOR.extract({"traceparent": value})
        span_context = trace.get_current_span(carrier).get_span_context()
        if span_context.is_valid:
            links.append(trace.Link(span_context))
        if len(links) >= limit:
            break
    return links


def point_back(requests: Iterable[otel_context.Context], batch: trace.Span) -> None:
    """Link each request's span to the batch span doing its work (the batch links to the
    requests, or is the first one's child): from either side, one finds the other."""
    target = batch.get_span_context()
    for request in requests:
        span = trace.get_current_span(request)
        if span.is_recording():
            span.add_link(target, {"points.link": "batched_in"})
