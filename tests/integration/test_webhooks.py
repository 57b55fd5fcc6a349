"""Webhooks end to end on real servers: a ledger relays its outbox to the webhooks service,
which delivers to a receiver on loopback (allowed by configuration). Every delivery is
verified with the `standardwebhooks` package, as a real receiver would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.webhooks.v1 import webhooks_pb2 as pb
from loyalty.webhooks.v1 import webhooks_pb2_grpc
from services.common import outbox
from services.common.db import create_pool
from services.common.relay import Relay
from services.common.server import ServiceHost
from services.common.webhooks_client import WebhooksClient
from services.ledger.server import SPEC as LEDGER
from services.webhooks.server import SPEC as WEBHOOKS
from tests.support.hosts import running
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import credit, debit, fails
from tests.support.receiver import Received, receiving

WebhooksStub: TypeAlias = "webhooks_pb2_grpc.WebhooksServiceAsyncStub"
FAST = {
    "WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
    "WEBHOOKS_RETRY_SECONDS": "0.2,0.2,0.2,0.2",
    "WEBHOOKS_POLL_SECONDS": "0.05",
}


@dataclass
class Suite:
    ledger: LedgerStub
    webhooks: WebhooksStub
    hosts: tuple[ServiceHost, ServiceHost]  # ledger, webhooks

    async def settled(self) -> None:
        """Once the ledger's relay and then the webhooks' workers have each run twice more:
        whatever was written before has been published and delivered (or queued to retry)."""
        ledger, webhooks = self.hosts
        await ledger.job("outbox-relay").passes.more(2)
        await webhooks.job("deliveries").passes.more(2)


@asynccontextmanager
async def suite(database_url: str, **env: str) -> AsyncIterator[Suite]:
    async with (
        running(WEBHOOKS, database_url, {**FAST, **env}) as webhooks_host,
        running(
            LEDGER,
            database_url,
            {"WEBHOOKS_ADDR": f"127.0.0.1:{webhooks_host.port}", "OUTBOX_RELAY_SECONDS": "0.05"},
        ) as ledger_host,
        grpc.aio.insecure_channel(f"127.0.0.1:{ledger_host.port}") as ledger_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{webhooks_host.port}") as webhooks_channel,
    ):
        yield Suite(
            ledger_pb2_grpc.LedgerServiceStub(ledger_channel),
            webhooks_pb2_grpc.WebhooksServiceStub(webhooks_channel),
            (ledger_host, webhooks_host),
        )


async def subscribe(webhooks: WebhooksStub, url: str, *types: str) -> tuple[str, str]:
    created = await webhooks.CreateSubscription(
        pb.CreateSubscriptionRequest(
            subscription=pb.Subscription(url=url, event_types=list(types) or ["*"])
        )
    )
    return created.subscription.subscription_id, created.secret


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    for _ in range(int(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def verified(secret: str, received: Received) -> dict[str, Any]:
    event: dict[str, Any] = Webhook(secret).verify(received.body, received.headers)
    assert event["id"] == received.headers["webhook-id"]
    return event


async def test_deliveries_are_signed_in_order_per_member_and_retried(
    private_database: str,
) -> None:
    async with receiving(fail_first=3) as receiver, suite(private_database) as s:
        _, secret = await subscribe(s.webhooks, receiver.url, "points.credited", "points.debited")
        members = ["wh-a", "wh-b", "wh-c"]
        for round_ in range(4):  # interleaved: each member's events in its own order
            for member in members:
                await credit(s.ledger, member, 10 + round_)
        for member in members:
            await debit(s.ledger, member, 5)
        assert (await fails(debit(s.ledger, "wh-a", 10_000))).reason == "INSUFFICIENT_POINTS"
        await until(lambda: len({r.headers["webhook-id"] for r in receiver.requests}) == 15)
        await s.settled()  # nothing more arrives: the refused debit wrote no event
    events = [verified(secret, r) for r in receiver.requests]
    assert len(receiver.requests) == 15 + 3  # three answered 503, then sent again
    first_seen: dict[str, dict[str, Any]] = {}
    for event in events:
        first_seen.setdefault(event["id"], event)
    for member in members:
        mine = [e for e in events if e["member_id"] == member]
        # Retries repeat an event, never reorder a member's events around it.
        unique = list(dict.fromkeys(e["id"] for e in mine))
        assert [e["id"] for e in mine if e["id"]] == sorted(
            (e["id"] for e in mine), key=unique.index
        )
        kinds = [first_seen[i]["type"] for i in unique]
        amounts = [first_seen[i]["data"]["amount"] for i in unique]
        assert kinds == ["points.credited"] * 4 + ["points.debited"]
        assert amounts == [10, 11, 12, 13, 5]
    with pytest.raises(WebhookVerificationError):  # a forged body fails verification
        Webhook(secret).verify(receiver.requests[-1].body + b" ", receiver.requests[-1].headers)


async def test_the_delivery_log_and_a_rotation_that_signs_with_both_secrets(
    private_database: str,
) -> None:
    async with receiving(fail_first=1) as receiver, suite(private_database) as s:
        subscription_id, old = await subscribe(s.webhooks, receiver.url, "points.credited")
        await credit(s.ledger, "wh-log", 3)
        await until(lambda: len(receiver.requests) == 2)
        log = await s.webhooks.ListDeliveries(
            pb.ListDeliveriesRequest(subscription_id=subscription_id)
        )
        [delivery] = log.deliveries
        assert delivery.status == pb.DELIVERY_STATUS_DELIVERED
        assert (delivery.attempts, delivery.last_status_code) == (2, 200)
        assert delivery.last_response == "ok" and delivery.event_type == "points.credited"
        rotated = await s.webhooks.RotateSecret(
            pb.RotateSecretRequest(subscription_id=subscription_id, overlap_seconds=60)
        )
        assert rotated.secret != old and rotated.subscription.HasField(
            "previous_secret_expire_time"
        )
        again = await s.webhooks.Redeliver(pb.RedeliverRequest(delivery_id=delivery.delivery_id))
        assert again.delivery.event_id == delivery.event_id
        await until(lambda: len(receiver.requests) == 3)
    last = receiver.requests[-1]
    assert len(last.headers["webhook-signature"].split(" ")) == 2
    assert verified(old, last)["id"] == verified(rotated.secret, last)["id"]  # either verifies


async def test_an_endpoint_that_keeps_failing_is_disabled_and_resumes_when_enabled(
    private_database: str,
) -> None:
    async with receiving(status=500) as receiver, suite(private_database) as s:
        subscription_id, secret = await subscribe(s.webhooks, receiver.url)
        await credit(s.ledger, "wh-down", 1)
        await credit(s.ledger, "wh-down", 2)

        async def disabled() -> pb.Subscription:
            got = await s.webhooks.GetSubscription(
                pb.GetSubscriptionRequest(subscription_id=subscription_id)
            )
            return got.subscription

        for _ in range(200):
            if not (await disabled()).enabled:
                break
            await asyncio.sleep(0.05)
        gave_up = await disabled()
        assert not gave_up.enabled and gave_up.disabled_reason.startswith("DELIVERY_GAVE_UP")
        assert len(receiver.requests) == 5  # the first event: one attempt and four retries
        assert gave_up.pending_deliveries == 1  # the second event waits behind it
        failed = await s.webhooks.ListDeliveries(
            pb.ListDeliveriesRequest(
                subscription_id=subscription_id, status=pb.DELIVERY_STATUS_FAILED
            )
        )
        assert [d.last_status_code for d in failed.deliveries] == [500]
        receiver.status = 200  # the operator fixes the endpoint, then enables it again
        fixed = gave_up
        fixed.enabled = True
        await s.webhooks.UpdateSubscription(pb.UpdateSubscriptionRequest(subscription=fixed))
        await until(lambda: receiver.requests[-1:] != [] and len(receiver.requests) == 6)
        assert verified(secret, receiver.requests[-1])["data"]["amount"] == 2
        assert (await disabled()).disabled_reason == ""


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:9/x", "resolves to 127.0.0.1"),
        ("http://169.254.169.254/latest/meta-data", "resolves to 169.254.169.254"),
        ("http://[::1]/x", "resolves to ::1"),
        ("http://10.1.2.3/x", "resolves to 10.1.2.3"),
        ("http://[64:ff9b::a00:1]/x", "resolves to 64:ff9b::a00:1"),  # NAT64 of 10.0.0.1
        ("http://[2002:7f00:1::]/x", "resolves to 2002:7f00:1::"),  # 6to4 of 127.0.0.1
        ("http://[::127.0.0.1]/x", "resolves to ::7f00:1"),  # IPv4-compatible
        ("http://[::ffff:169.254.169.254]/x", "resolves to ::ffff:a9fe:a9fe"),
        ("http://[fec0::1]/x", "resolves to fec0::1"),  # site-local
        ("http://[100::1]/x", "resolves to 100::1"),  # discard-only
        ("ftp://example.com/x", "http:// or https://"),
        ("https://user:pw@example.com/x", "credentials"),
    ],
)
async def test_endpoints_on_private_networks_are_refused(
    private_database: str, url: str, problem: str
) -> None:
    async with running(WEBHOOKS, private_database) as host:  # no network allowed
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            stub = webhooks_pb2_grpc.WebhooksServiceStub(channel)
            error = await fails(subscribe(stub, url))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "ENDPOINT_NOT_ALLOWED" and problem in error.message
    assert [v.field for v in error.violations] == ["subscription.url"]


async def test_published_events_are_taken_once(private_database: str) -> None:
    async with running(WEBHOOKS, private_database, FAST) as host:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            stub = webhooks_pb2_grpc.WebhooksServiceStub(channel)
            await subscribe(stub, "http://127.0.0.1:9/unused")
            event = pb.Event(
                event_id="5f0c1f3e-34f7-4bd0-8f2c-0a3c1d2e3f40",
                type="tier.changed",
                member_id="m-1",
                data_json=json.dumps({"from": None, "to": "gold"}),
                source="rules",
                sequence=1,
            )
            event.occurred_at.GetCurrentTime()
            first = await stub.PublishEvents(pb.PublishEventsRequest(events=[event]))
            again = await stub.PublishEvents(pb.PublishEventsRequest(events=[event]))
            assert (first.accepted, first.deliveries) == (1, 1)
            assert (again.accepted, again.deliveries) == (0, 0)
            event.data_json = "[1]"
            error = await fails(stub.PublishEvents(pb.PublishEventsRequest(events=[event])))
            assert [v.field for v in error.violations] == ["events[0].data_json"]


async def test_an_event_that_commits_late_is_still_relayed(private_database: str) -> None:
    """A sequence number is taken at write, not at commit: an event numbered before one
    already handed on can become visible afterwards, and must still go."""
    data = {"transfer_id": "1", "amount": 1, "reason_code": "", "source": "t"}
    async with (
        running(WEBHOOKS, private_database, FAST) as webhooks_host,
        running(LEDGER, private_database),  # its schema; no relay of its own (no WEBHOOKS_ADDR)
    ):
        pool = await create_pool(private_database, schema="ledger", application_name="t")
        late = await pool.acquire()
        client = WebhooksClient(f"127.0.0.1:{webhooks_host.port}")
        try:
            slow = late.transaction()
            await slow.start()
            await outbox.emit(late, [outbox.Event("points.credited", "m-late", data)])
            async with pool.acquire() as conn:
                await outbox.emit(conn, [outbox.Event("points.credited", "m-early", data)])
            handing_on = client.publish

            async def commit_midway(events: list[pb.Event]) -> pb.PublishEventsResponse:
                reply = await handing_on(events)
                if late.is_in_transaction():  # the slow one commits while the first is sent
                    await slow.commit()
                return reply

            client.publish = commit_midway  # type: ignore[method-assign]
            relay = Relay(pool, client, "ledger")
            assert await relay.relay_once() == 2
            async with pool.acquire() as conn:
                stored = await conn.fetch(
                    "SELECT member_id, sequence FROM webhooks.events ORDER BY member_id"
                )
            assert [tuple(r) for r in stored] == [("m-early", 1), ("m-late", 1)]
        finally:
            await client.close()
            await pool.release(late)
            await pool.close()
