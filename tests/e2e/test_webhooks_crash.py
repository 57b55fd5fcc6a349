"""A webhooks worker SIGKILLed in the middle of a delivery loses nothing: the delivery's lease
runs out and the next worker sends it again (at least once; receivers deduplicate on
webhook-id), and a member's later events still wait their turn."""

from __future__ import annotations

import asyncio
import signal

import grpc
from standardwebhooks.webhooks import Webhook

from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.webhooks.v1 import webhooks_pb2 as pb
from loyalty.webhooks.v1 import webhooks_pb2_grpc
from services.ledger.server import SPEC as LEDGER
from tests.support.hosts import free_port, running, spawn, wait_serving
from tests.support.ledger_calls import credit
from tests.support.receiver import receiving


async def test_a_killed_worker_loses_no_delivery(private_database: str) -> None:
    port = free_port()
    env = {
        "DATABASE_URL": private_database,
        "WEBHOOKS_PORT": str(port),
        "WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
        "WEBHOOKS_POLL_SECONDS": "0.05",
        "WEBHOOKS_LEASE_SECONDS": "1",
        "WEBHOOKS_RETRY_SECONDS": "0.2,0.2",
        "LOG_LEVEL": "WARNING",
    }
    relay = {"WEBHOOKS_ADDR": f"127.0.0.1:{port}", "OUTBOX_RELAY_SECONDS": "0.05"}
    first = spawn("services.webhooks.server", env)
    async with receiving(hang=True) as receiver, running(LEDGER, private_database, relay) as host:
        try:
            await wait_serving(f"127.0.0.1:{port}")
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                created = await webhooks_pb2_grpc.WebhooksServiceStub(channel).CreateSubscription(
                    pb.CreateSubscriptionRequest(
                        subscription=pb.Subscription(url=receiver.url, event_types=["*"])
                    )
                )
            async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
                ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
                await credit(ledger, "crash-member", 1)
                await credit(ledger, "crash-member", 2)
            for _ in range(200):  # the first delivery is in flight: the receiver holds it
                if receiver.requests:
                    break
                await asyncio.sleep(0.05)
            assert len(receiver.requests) == 1
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait, 10)
            receiver.hang = False
            second = spawn("services.webhooks.server", env)
            try:
                for _ in range(200):
                    if len({r.headers["webhook-id"] for r in receiver.requests}) == 2:
                        break
                    await asyncio.sleep(0.05)
            finally:
                second.send_signal(signal.SIGTERM)
                await asyncio.to_thread(second.wait, 15)
        finally:
            if first.poll() is None:
                first.kill()
    hook = Webhook(created.secret)
    events = [hook.verify(r.body, r.headers) for r in receiver.requests]
    assert [e["data"]["amount"] for e in events] == [1, 1, 2]  # the first sent twice, in order
    assert events[0]["id"] == events[1]["id"] != events[2]["id"]
