"""Awards survive a ledger outage: recorded with the event, credited once the ledger is back."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.rules.v1 import rules_pb2 as pb
from loyalty.rules.v1 import rules_pb2_grpc
from services.common.db import create_pool
from services.common.ledger_client import LedgerClient
from services.ledger.server import SPEC as LEDGER
from services.rules.server import SPEC as RULES
from services.rules.settlement import Settlement
from tests.support.hosts import free_port, running
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import audit_clean, balance
from tests.support.rules_calls import RulesStub, define_program, event


async def test_awards_are_credited_when_the_ledger_comes_back(
    private_database: str, user: str, spans: InMemorySpanExporter
) -> None:
    database_url = private_database  # no other rules server may settle these awards for us
    await define_forward_rule(database_url)
    dead_port = free_port()  # nothing listens here yet
    env = {"LEDGER_ADDR": f"127.0.0.1:{dead_port}", "RULES_SETTLE_SECONDS": "0.2"}
    async with (
        running(LEDGER, database_url) as reader,  # for the test's reads only
        grpc.aio.insecure_channel(f"127.0.0.1:{reader.port}") as reader_channel,
        running(RULES, database_url, env) as rules_host,
    ):
        ledger: LedgerStub = ledger_pb2_grpc.LedgerServiceStub(reader_channel)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{rules_host.port}") as channel:
            rules = rules_pb2_grpc.RulesServiceStub(channel)
            request = event(user, pb.EVENT_TYPE_FORWARD)
            with trace.get_tracer(__name__).start_as_current_span("forward") as caller:
                reply = await rules.RecordEvent(request)
            assert reply.total_points == 3  # awarded now, even with the ledger down
            assert (await balance(ledger, user)).available == 0
            async with running(LEDGER, database_url, {"LEDGER_PORT": str(dead_port)}):
                for _ in range(100):
                    if (await balance(ledger, user)).available == 3:
                        break
                    await asyncio.sleep(0.1)
                assert (await balance(ledger, user)).available == 3
                assert await rules.RecordEvent(request) == reply  # replay: same, no new credit
                await asyncio.sleep(0.5)
                assert (await balance(ledger, user)).available == 3
        await audit_clean(ledger)
    # The retry is a trace of its own that links to the request that earned the award.
    retries = [s for s in spans.get_finished_spans() if s.name == "rules.settle_backlog"]
    earned_in = caller.get_span_context().trace_id
    assert any(earned_in in {link.context.trace_id for link in r.links} for r in retries)


async def define_forward_rule(database_url: str) -> None:
    """A rule for forwards, defined through a short-lived rules server."""
    async with running(RULES, database_url) as host:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            await rules_pb2_grpc.RulesServiceStub(channel).UpsertRule(
                pb.UpsertRuleRequest(
                    rule=pb.Rule(
                        rule_id="forward",
                        kind=pb.RULE_KIND_ACTION,
                        event_type=pb.EVENT_TYPE_FORWARD,
                        enabled=True,
                        action=pb.ActionParams(points=3),
                    )
                )
            )


async def test_concurrent_events_are_credited_in_shared_rounds_that_keep_every_trace(
    rules: RulesStub, ledger: LedgerStub, spans: InMemorySpanExporter
) -> None:
    await define_program(rules)
    users = [f"round-{uuid.uuid4().hex[:8]}" for _ in range(30)]
    tracer = trace.get_tracer(__name__)

    async def like(user: str) -> int:
        with tracer.start_as_current_span("caller") as caller:
            reply = await rules.RecordEvent(event(user, pb.EVENT_TYPE_LIKE))
            assert reply.total_points == 1
            return caller.get_span_context().trace_id

    traces = await asyncio.gather(*(like(user) for user in users))
    # Credited when the reply came: no waiting for the background retry.
    assert [(await balance(ledger, user)).available for user in users] == [1] * 30
    rounds = [
        s
        for s in spans.get_finished_spans()
        if s.name == "rules.settle" and s.context.trace_id in traces
    ]
    users_per_round = [dict(r.attributes or {})["points.users"] for r in rounds]
    assert sum(int(str(n)) for n in users_per_round) == 30  # each user in exactly one round
    reached = {r.context.trace_id for r in rounds} | {
        link.context.trace_id for r in rounds for link in r.links
    }
    assert reached >= set(traces)  # every event's trace leads to the round that credited it
    # ... and back: a request whose round lives in another trace links to that round.
    round_ids = {r.context.span_id for r in rounds}
    for server in (
        s
        for s in spans.get_finished_spans()
        if s.kind == SpanKind.SERVER
        and s.name.endswith("/RecordEvent")
        and s.context.trace_id in traces
    ):
        if server.context.trace_id not in {r.context.trace_id for r in rounds}:
            assert {link.context.span_id for link in server.links} & round_ids


async def test_asking_to_settle_nobody_returns_at_once(database_url: str) -> None:
    pool = await create_pool(database_url, schema="rules", application_name="t", min_size=1)
    try:
        ledger = LedgerClient(f"127.0.0.1:{free_port()}")
        try:
            settlement = Settlement(pool, ledger)
            await asyncio.wait_for(settlement.settle_soon([]), 5)  # no waiter is ever stranded
        finally:
            await ledger.close()
    finally:
        await pool.close()
