import grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.support import echo_service
from tests.support.hosts import running


def _one(spans: list[ReadableSpan], kind: SpanKind, name_part: str) -> ReadableSpan:
    found = [s for s in spans if s.kind == kind and name_part in s.name]
    assert len(found) == 1, [(s.name, s.kind) for s in spans]
    return found[0]


async def test_client_server_and_sql_spans_nest_in_one_trace(
    database_url: str, spans: InMemorySpanExporter
) -> None:
    async with running(echo_service.SPEC, database_url) as host:
        spans.clear()  # drop spans of start-up (migrations)
        with trace.get_tracer(__name__).start_as_current_span("caller") as caller:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
                await echo_service.call(channel, "Query")(b"traced")
    finished = list(spans.get_finished_spans())
    trace_id = caller.get_span_context().trace_id
    client = _one(finished, SpanKind.CLIENT, "EchoService/Query")
    server = _one(finished, SpanKind.SERVER, "EchoService/Query")
    sql = [
        s
        for s in finished
        if s.attributes
        and "INSERT INTO notes"
        in str(s.attributes.get("db.statement", s.attributes.get("db.query.text", "")))
    ]
    assert len(sql) == 1, [(s.name, dict(s.attributes or {})) for s in finished]
    assert {client.context.trace_id, server.context.trace_id, sql[0].context.trace_id} == {trace_id}
    assert client.parent is not None and client.parent.span_id == caller.get_span_context().span_id
    assert server.parent is not None and server.parent.span_id == client.context.span_id
    assert sql[0].parent is not None and sql[0].parent.span_id == server.context.span_id
    assert server.resource.attributes["service.name"] == "tests"
