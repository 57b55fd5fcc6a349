"""An OTLP/gRPC sink for the benchmarks, in its own process (so that receiving spans, metrics
and logs costs the measured processes nothing they would not pay against a real collector).
Metrics and logs are accepted and dropped: a collector that refused them would make the
services log and retry, a cost production does not pay.

It keeps only counts of the spans it receives, by service and kind: an SQL statement (a client
span with `db.system`), a gRPC call (another client span), and writes them as JSON to the file
named on its command line after every export. Usage: python -m bench.sink PORT FILE
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.otlp import each


class Sink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for service, span in each(request.resource_spans, "scope_spans", "spans"):
            self.counts[f"{service} {_kind(span)}"] += 1
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.counts))
        temporary.replace(self.path)
        return trace_service_pb2.ExportTraceServiceResponse()


class Drop(
    metrics_service_pb2_grpc.MetricsServiceServicer, logs_service_pb2_grpc.LogsServiceServicer
):
    async def Export(self, request: Any, context: Any) -> Any:
        if isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
            return metrics_service_pb2.ExportMetricsServiceResponse()
        return logs_service_pb2.ExportLogsServiceResponse()


def _kind(span: Span) -> str:
    if span.kind == Span.SPAN_KIND_CLIENT:
        return "sql" if any(a.key == "db.system" for a in span.attributes) else "rpc"
    return "server" if span.kind == Span.SPAN_KIND_SERVER else "internal"


async def main(port: int, path: Path) -> None:
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        Sink(path), server
    )
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Drop(), server)  # type: ignore[no-untyped-call]
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Drop(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2])))
