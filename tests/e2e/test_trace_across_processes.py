"""One request through the gateway makes one trace across processes:
gateway → rules → ledger → SQL, with parent/child edges between the processes' spans."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx

from gateway.auth import mint
from gateway.settings import DEV_SECRET, AuthSettings
from tests.support.hosts import free_port
from tests.support.otlp import ReceivedSpan, start_receiver
from tests.support.suite import define_program_and_sticker, running_suite

SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind


async def test_check_in_is_one_trace_from_gateway_to_sql(database_url: str) -> None:
    otlp_port = free_port()
    receiver_server, receiver = await start_receiver(otlp_port)
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    user = f"traced-{uuid.uuid4().hex[:8]}"
    trace_id, redeem_trace_id = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        async with running_suite(database_url, env) as suite:
            await define_program_and_sticker(suite, points_price=5)
            async with httpx.AsyncClient(base_url=suite.gateway_url(), timeout=10) as http:
                token = mint(AuthSettings("HS256", DEV_SECRET, None, None), user)
                reply = await http.post(
                    "/v1/me/check-in",
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Idempotency-Key": "traced-check-in",
                        # Continue the caller's trace (W3C trace context).
                        "traceparent": f"00-{trace_id}-{'1' * 16}-01",
                    },
                )
                assert reply.status_code == 200, reply.text
                assert reply.json()["total_points"] == 5
                redeemed = await http.post(
                    "/v1/me/redemptions",
                    json={"item_id": "sticker"},
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Idempotency-Key": "traced-redemption",
                        "traceparent": f"00-{redeem_trace_id}-{'2' * 16}-01",
                    },
                )
                assert redeemed.json()["status"] == "COMPLETED", redeemed.text
    finally:
        await receiver_server.stop(None)

    check_edges(receiver.spans, trace_id)
    redemption_edges(receiver.spans, redeem_trace_id)


def tools(
    spans: list[ReceivedSpan],
) -> tuple[
    Callable[[str, int, str], ReceivedSpan],
    Callable[[ReceivedSpan], ReceivedSpan],
    Callable[[ReceivedSpan], list[ReceivedSpan]],
]:
    by_id = {s.span_id: s for s in spans}

    def one(service: str, kind: int, name_part: str) -> ReceivedSpan:
        found = [
            s for s in spans if s.service == service and s.kind == kind and name_part in s.name
        ]
        assert found, (service, name_part, sorted((s.service, s.name) for s in spans))
        return found[0]

    def parent(span: ReceivedSpan) -> ReceivedSpan:
        return by_id[span.parent_span_id]

    def ancestors(span: ReceivedSpan) -> list[ReceivedSpan]:
        chain = []
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
            chain.append(span)
        return chain

    return one, parent, ancestors


def check_edges(received: list[ReceivedSpan], trace_id: str) -> None:
    """Check-in: gateway → rules → (rules SQL) → ledger → (ledger SQL)."""
    spans = [s for s in received if s.trace_id == trace_id]
    one, parent, ancestors = tools(spans)
    gateway = one("gateway", SERVER, "/v1/me/check-in")
    assert gateway.parent_span_id == "1" * 16  # continued the caller's traceparent
    to_rules = one("gateway", CLIENT, "RulesService/RecordEvent")
    assert gateway in ancestors(to_rules)
    rules = one("rules", SERVER, "RulesService/RecordEvent")
    assert parent(rules) == to_rules  # the edge between two processes
    # Awards reach the ledger in a settlement round (one PostBatch for the events waiting).
    to_ledger = one("rules", CLIENT, "LedgerService/PostBatch")
    assert rules in ancestors(to_ledger)
    ledger = one("ledger", SERVER, "LedgerService/PostBatch")
    assert parent(ledger) == to_ledger
    ledger_sql = [s for s in spans if s.service == "ledger" and s.kind == CLIENT]
    assert ledger_sql and all(ledger in ancestors(s) for s in ledger_sql)
    rules_sql = [
        s for s in spans if s.service == "rules" and s.kind == CLIENT and s is not to_ledger
    ]
    assert rules_sql and all(rules in ancestors(s) for s in rules_sql)


def redemption_edges(received: list[ReceivedSpan], trace_id: str) -> None:
    """Redemption of a sticker (fulfilled on the spot): gateway → mall → rules (risk) and
    ledger (one debit) → SQL."""
    spans = [s for s in received if s.trace_id == trace_id]
    one, parent, ancestors = tools(spans)
    gateway = one("gateway", SERVER, "/v1/me/redemptions")
    mall = one("mall", SERVER, "MallService/Redeem")
    assert gateway in ancestors(mall)
    assert parent(mall) == one("gateway", CLIENT, "MallService/Redeem")
    for callee, method in (("rules", "CheckRisk"), ("ledger", "Debit")):
        server = one(callee, SERVER, f"/{method}")
        assert parent(server) == one("mall", CLIENT, f"/{method}")
        assert mall in ancestors(server)
    mall_sql = [
        s for s in spans if s.service == "mall" and s.kind == CLIENT and "Service/" not in s.name
    ]
    assert mall_sql and all(mall in ancestors(s) for s in mall_sql)
