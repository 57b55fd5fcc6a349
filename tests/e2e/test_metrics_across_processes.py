"""Metrics that real calls produced, read the two ways operators read them: each process'
Prometheus endpoint, and OTLP as a collector receives it. The same run checks that idle
background loops and readiness probes export no traces, and that logs are exported too."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from gateway.auth import mint
from gateway.settings import DEV_SECRET, AuthSettings
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.rules.v1 import rules_pb2 as rpb
from loyalty.rules.v1 import rules_pb2_grpc
from loyalty.webhooks.v1 import webhooks_pb2 as wpb
from loyalty.webhooks.v1 import webhooks_pb2_grpc
from tests.support.dashboards import expressions, metric_names
from tests.support.databases import fresh_database
from tests.support.hosts import free_port
from tests.support.metrics import Point, scrape_port, total
from tests.support.otlp import MetricsReceiver, Receiver, start_receivers
from tests.support.receiver import Receiver as WebhookReceiver
from tests.support.receiver import receiving
from tests.support.suite import MODULES, Suite, define_program_and_sticker, running_suite

SERVER = 2  # opentelemetry.proto.trace.v1.Span.SpanKind
LEDGER = "loyalty.ledger.v1.LedgerService"


@pytest.fixture
async def own_database(server_url: str) -> AsyncIterator[str]:
    """Gauges of database state are exact only on a database no other test writes to."""
    async with fresh_database(server_url, "points_metrics") as url:
        yield url


async def test_calls_show_up_in_prometheus_and_otlp_metrics(own_database: str) -> None:
    otlp_port = free_port()
    otlp = await start_receivers(otlp_port)
    metrics_ports = {name: free_port() for name in MODULES}
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
        "METRICS_SAMPLE_SECONDS": "0.2",
        "LOG_LEVEL": "INFO",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
        # Busy pollers: many idle passes, none of which may export a trace.
        "LEDGER_HOLD_SWEEP_SECONDS": "0.1",
        "RULES_SETTLE_SECONDS": "0.1",
        "MALL_RECOVERY_SECONDS": "0.1",
        "LEDGER_EXPIRY_SWEEP_SECONDS": "0.2",
        "OUTBOX_RELAY_SECONDS": "0.1",
        "WEBHOOKS_POLL_SECONDS": "0.1",
        "WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
        **{f"{name.upper()}_METRICS_PORT": str(port) for name, port in metrics_ports.items()},
    }
    try:
        async with receiving() as receiver, running_suite(own_database, env) as suite:
            async with grpc.aio.insecure_channel(suite.address("webhooks")) as channel:
                await webhooks_pb2_grpc.WebhooksServiceStub(channel).CreateSubscription(
                    wpb.CreateSubscriptionRequest(
                        subscription=wpb.Subscription(url=receiver.url, event_types=["*"])
                    )
                )
            await drive(suite)
            await asyncio.sleep(1.5)  # gauges sampled, OTLP exported, pollers idle
            scraped = {name: await scrape_port(port) for name, port in metrics_ports.items()}
    finally:
        await otlp.server.stop(None)
    check_prometheus(scraped)
    check_webhooks(scraped["webhooks"], scraped["ledger"], receiver)
    check_dashboards_read_real_metrics(scraped)
    check_otlp(otlp.metrics)
    check_no_idle_traces(otlp.traces)
    # Logs reach the collector too (and stay on stderr).
    serving = {service for service, _, body, _ in otlp.logs.records if body == "serving"}
    assert serving == {"ledger", "rules", "mall", "webhooks"}


async def drive(suite: Suite) -> None:
    """A check-in (5 points), a redemption (3 points), a refused credit, a balance watch, and
    readiness probes."""
    await define_program_and_sticker(suite, points_price=3)
    async with grpc.aio.insecure_channel(suite.address("rules")) as channel:
        await rules_pb2_grpc.RulesServiceStub(channel).UpsertBudget(
            rpb.UpsertBudgetRequest(
                budget=rpb.Budget(
                    budget_id="daily",
                    applies_to_all=True,
                    period=rpb.BUDGET_PERIOD_DAY,
                    points_limit=1000,
                    over_budget=rpb.OVER_BUDGET_CUT,
                )
            )
        )
    user = f"metered-{uuid.uuid4().hex[:8]}"
    token = mint(AuthSettings("HS256", DEV_SECRET, None, None), user)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=suite.gateway_url(), timeout=10) as http:
        checked = await http.post(
            "/v1/me/check-in", headers={**headers, "Idempotency-Key": "metered-check-in"}
        )
        assert checked.status_code == 200, checked.text
        redeemed = await http.post(
            "/v1/me/redemptions",
            json={"item_id": "sticker"},
            headers={**headers, "Idempotency-Key": "metered-redemption"},
        )
        assert redeemed.json()["status"] == "COMPLETED", redeemed.text
        for _ in range(3):
            assert (await http.get("/readyz")).status_code == 200
    async with grpc.aio.insecure_channel(suite.address("ledger")) as channel:
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ledger.Credit(lpb.CreditRequest(user_id=user, request_id="r-0", amount=0))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        watch = ledger.WatchBalance(lpb.WatchBalanceRequest(user_id=user))
        first = await watch.read()
        assert isinstance(first, lpb.WatchBalanceResponse)
        watch.cancel()


def _calls(samples: dict[str, list[Point]], method: str, code: str = "OK") -> float:
    return total(
        samples.get("rpc_server_call_duration_seconds_count", []),
        {"rpc_method": method, "rpc_response_status_code": code},
    )


def check_prometheus(scraped: dict[str, dict[str, list[Point]]]) -> None:
    ledger, rules, mall, gateway = (scraped[n] for n in ("ledger", "rules", "mall", "gateway"))
    # RED per method, with the status of each call.
    assert _calls(rules, "loyalty.rules.v1.RulesService/RecordEvent") == 1
    assert _calls(ledger, f"{LEDGER}/PostBatch") >= 1  # the check-in's settlement
    assert _calls(ledger, f"{LEDGER}/Debit") == 1  # the sticker, spent at once
    assert _calls(ledger, f"{LEDGER}/Credit", "INVALID_ARGUMENT") == 1
    assert _calls(ledger, f"{LEDGER}/WatchBalance", "CANCELLED") == 1
    assert _calls(mall, "loyalty.mall.v1.MallService/Redeem") == 1
    http = gateway["http_server_request_duration_seconds_count"]
    assert total(http, {"http_route": "/v1/me/check-in", "http_response_status_code": "200"}) == 1
    assert total(http, {"http_route": "/v1/me/redemptions", "http_request_method": "POST"}) == 1
    # Domain: points issued and redeemed, and what the ledger now owes.
    moved = ledger["points_ledger_points_total"]
    assert total(moved, {"points_flow": "issued"}) == 5
    assert total(moved, {"points_flow": "redeemed"}) == 3
    assert total(ledger["points_ledger_liability"], {}) == 2
    assert total(ledger["points_ledger_batch_size_count"], {}) >= 2
    assert total(rules["points_rules_settlement_backlog"], {}) == 0
    assert total(rules["points_rules_review_queue"], {}) == 0
    assert total(rules["points_rules_budget_used"], {"points_budget": "daily"}) == 5
    assert total(rules["points_rules_budget_limit"], {"points_budget": "daily"}) == 1000
    assert total(mall["points_mall_sagas_unfinished"], {}) == 0
    assert total(mall["points_dead_letters_open"], {"points_kind": "LOTTERY_PRIZE"}) == 0
    assert total(ledger["points_ledger_expiry_duration_seconds_count"], {}) >= 1
    for samples in (ledger, rules, mall):
        pool = samples["db_client_connection_count"]
        assert {p.attributes["db_client_connection_state"] for p in pool} == {"used", "idle"}


def check_webhooks(
    webhooks: dict[str, list[Point]],
    ledger: dict[str, list[Point]],
    receiver: WebhookReceiver,
) -> None:
    """The check-in's and the redemption's events reached the receiver, and the metrics say
    so: attempts delivered, nothing waiting in the outbox or the delivery queue."""
    types = {json.loads(r.body)["type"] for r in receiver.requests}
    assert {"points.credited", "points.debited", "redemption.completed"} <= types
    attempts = webhooks["points_webhooks_attempts_total"]
    assert total(attempts, {"points_outcome": "delivered"}) == len(receiver.requests)
    assert total(webhooks["points_webhooks_pending"], {}) == 0
    assert total(ledger["points_outbox_unpublished"], {}) == 0


def check_dashboards_read_real_metrics(scraped: dict[str, dict[str, list[Point]]]) -> None:
    """Every metric a Grafana panel or an alert reads is one the suite produced here (through
    the collector the names are the same: OTLP in, Prometheus out)."""
    produced = {name for samples in scraped.values() for name in samples}
    read = {name for expression in expressions() for name in metric_names(expression)}
    assert read and read <= produced, sorted(read - produced)


def check_otlp(otlp: MetricsReceiver) -> None:
    calls = otlp.points[("ledger", "rpc.server.call.duration")]
    debit = {"rpc.method": f"{LEDGER}/Debit", "rpc.response.status_code": "OK"}
    assert max(p.value for p in calls if all(p.attributes.get(k) == v for k, v in debit.items()))
    assert ("gateway", "http.server.request.duration") in otlp.points
    issued = otlp.points[("ledger", "points.ledger.points")]
    assert max(p.value for p in issued if p.attributes.get("points.flow") == "issued") == 5
    assert ("mall", "db.client.connection.count") in otlp.points


def check_no_idle_traces(spans: Receiver) -> None:
    """Every trace starts at a request, a start-up migration or a job's real work (which links
    to the requests that caused it: a fast settlement poll may catch the check-in's award
    before the request's own round does)."""
    roots = [s for s in spans.spans if not s.parent_span_id]
    unexpected = [
        (s.service, s.name)
        for s in roots
        if not (s.name.endswith(".migrate") or (s.service == "gateway" and s.kind == SERVER))
        and not (s.name == "rules.settle_backlog" and s.links)
        and not s.name.endswith(".relay_events")  # events handed to the webhooks service
        and s.name != "webhooks.deliver"
    ]
    assert not unexpected, unexpected
    assert not [s for s in spans.spans if "Health/Check" in s.name]
    assert {s.name for s in roots if s.name.endswith(".migrate")} == {
        "ledger.migrate",
        "rules.migrate",
        "mall.migrate",
        "webhooks.migrate",
    }
