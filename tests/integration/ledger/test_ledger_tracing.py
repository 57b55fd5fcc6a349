"""Group commit keeps traces whole: the batch's SQL nests under the request that started it,
and every request sharing the batch points to it."""

import asyncio
import uuid

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


async def test_requests_sharing_a_group_commit_point_to_the_batch(
    ledger: Stub, spans: InMemorySpanExporter
) -> None:
    """The batch is the first request's child and links to the others; each of the others
    links back to the batch, so a request's own trace leads to its ledger work."""
    tracer = trace.get_tracer(__name__)

    async def one(n: int) -> int:
        with tracer.start_as_current_span("caller") as caller:
            await credit(ledger, f"grouped-{n}-{uuid.uuid4().hex[:6]}", 1)
            return caller.get_span_context().trace_id

    traces = set(await asyncio.gather(*(one(n) for n in range(40))))
    finished = spans.get_finished_spans()
    batches = {s.context.span_id: s for s in finished if s.name == "ledger.group_commit"}
    servers = [
        s
        for s in finished
        if s.kind == SpanKind.SERVER and s.name.endswith("/Credit") and s.context.trace_id in traces
    ]
    assert len(servers) == 40
    shared = [b for b in batches.values() if b.links]
    assert shared, "40 concurrent credits shared no transaction"
    for server in servers:
        parent_of = {b.parent.span_id for b in batches.values() if b.parent is not None}
        if server.context.span_id in parent_of:
            continue  # this request started its batch: the batch is its child
        pointers = [link for link in server.links if link.context.span_id in batches]
        assert len(pointers) == 1, server.links
        batch = batches[pointers[0].context.span_id]
        assert server.context.trace_id in {link.context.trace_id for link in batch.links}
