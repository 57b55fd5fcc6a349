"""OpenTelemetry setup: one tracer provider per process, exporting over OTLP when configured.

Instrumentation of grpc.aio (server and client) and asyncpg patches the libraries, so it must
run before any server, channel or pool is created: `setup_telemetry` is the first thing a
process does after reading its settings.
"""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.grpc import (
    GrpcAioInstrumentorClient,
    GrpcAioInstrumentorServer,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from services.common.settings import TelemetrySettings

log = logging.getLogger(__name__)
_instrumented = False


def build_provider(
    settings: TelemetrySettings, extra_processors: tuple[SpanProcessor, ...] = ()
) -> TracerProvider:
    resource = Resource.create(
        {
            "service.name": settings.service,
            "service.namespace": "points",
            "service.version": settings.version,
            "deployment.environment.name": settings.environment,
        }
    )
    provider = TracerProvider(resource=resource)
    if settings.otlp_endpoint:
        # Imported lazily: the exporter pulls in a gRPC client nobody needs without a collector.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.otlp_endpoint)))
    for processor in extra_processors:
        provider.add_span_processor(processor)
    return provider


def instrument_libraries() -> None:
    """Patch grpc.aio and asyncpg once per process (idempotent)."""
    global _instrumented
    if _instrumented:
        return
    GrpcAioInstrumentorServer().instrument()
    GrpcAioInstrumentorClient().instrument()
    AsyncPGInstrumentor().instrument()
    _instrumented = True


def setup_telemetry(
    settings: TelemetrySettings, extra_processors: tuple[SpanProcessor, ...] = ()
) -> TracerProvider:
    """Install the process-wide tracer provider and instrument libraries.

    The global provider can be set only once per process; when one is already installed (an
    embedding test harness did it), it is kept and returned so every server shares it.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        provider = build_provider(settings, extra_processors)
        trace.set_tracer_provider(provider)
        if settings.otlp_endpoint:
            log.info("exporting traces", extra={"otlp_endpoint": settings.otlp_endpoint})
    instrument_libraries()
    return provider
