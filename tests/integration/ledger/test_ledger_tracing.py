"""Group commit keeps traces whole: the batch's SQL nests under the request that started it."""

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.support.ledger_calls import Stub, credit


async def test_credit_sql_nests_under_the_server_span(
    ledger: Stub, user: str, spans: InMemorySpanExporter
) -> None:
    with trace.get_tracer(__name__).start_as_current_span("caller") as caller:
        await credit(ledger, user, 5)
    finished = [
        s
        for s in spans.get_finished_spans()
        if s.context.trace_id == caller.get_span_context().trace_id
    ]
    by_id = {s.context.span_id: s for s in finished}
    [server] = [s for s in finished if s.kind == SpanKind.SERVER and s.name.endswith("/Credit")]
    [batch] = [s for s in finished if s.name == "ledger.group_commit"]
    rpc = {caller.get_span_context().span_id, server.context.span_id, batch.context.span_id}
    sql = [
        s
        for s in finished
        if s.context.span_id not in rpc
        and s.kind == SpanKind.CLIENT
        and s.parent is not None
        and s.parent.span_id != caller.get_span_context().span_id
    ]
    assert batch.parent is not None and batch.parent.span_id == server.context.span_id
    assert len(sql) >= 4, [s.name for s in finished]  # BEGIN, claim, credit, ..., COMMIT
    for span in sql:  # every statement of the batch is a child of the batch span
        parent = span.parent
        assert parent is not None and by_id[parent.span_id] is batch
