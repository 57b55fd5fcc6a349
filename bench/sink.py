"""An OTLP/gRPC trace sink for the benchmarks, in its own process (so that receiving spans
costs the measured processes nothing they would not pay against a real collector).

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


def _kind(span: Span) -> str:
    if span.kind == Span.SPAN_KIND_CLIENT:
        return "sql" if any(a.key == "db.system" for a in span.attributes) else "rpc"
    return "server" if span.kind == Span.SPAN_KIND_SERVER else "internal"


async def main(port: int, path: Path) -> None:
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        Sink(path), server
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2])))
