"""Webhook delivery (`webhooks_delivery`): events from the ledger's outbox delivered to a
local receiver, signed, in order per member, against the floor of the same receiver taking
plain POSTs of the same bodies from 16 concurrent clients in the same run.

Prints deliveries per second, the delay from commit (the event's occurred_at) to delivery
(p50, p99), the ratio to the floor and CPU ms per delivery per process.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Iterable
from datetime import datetime

import grpc
import httpx

from bench.support import PROFILES, Measured, Rate, report, scratch_database, suite
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.webhooks.v1 import webhooks_pb2 as wpb
from loyalty.webhooks.v1 import webhooks_pb2_grpc

EVENTS = int(os.environ.get("BENCH_WEBHOOK_EVENTS", "5000"))
TRICKLE = 100
MEMBERS = 500


class Sink:
    """A receiver on loopback: notes when each event arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, tuple[float, str]] = {}  # id -> (wall time, occurred_at)
        self.port = 0
        self.expected = 0
        self.all_in = asyncio.Event()  # set once `expected` events arrived

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                body = await reader.readexactly(length)
                event = json.loads(body)
                if "id" in event:
                    self.arrived.setdefault(event["id"], (time.time(), event["occurred_at"]))
                    if len(self.arrived) >= self.expected:
                        self.all_in.set()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def delays(arrivals: Iterable[tuple[float, str]]) -> list[float]:
    """Milliseconds from each event's commit to its arrival, sorted."""
    return sorted(
        (t - datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()) * 1000
        for t, at in arrivals
    )


async def floor_rate(url: str, body: bytes, count: int) -> float:
    """Plain POSTs of a delivery-sized body, 16 at a time: what the receiver itself takes."""
    async with httpx.AsyncClient() as http:
        started = time.perf_counter()

        async def worker(n: int) -> None:
            for _ in range(n):
                await http.post(url, content=body)

        await asyncio.gather(*(worker(count // 16) for _ in range(16)))
        return (count // 16 * 16) / (time.perf_counter() - started)


async def burst_of_credits(ledger: ledger_pb2_grpc.LedgerServiceAsyncStub) -> None:
    """EVENTS credits over MEMBERS members, 500 to a batch, as fast as the ledger takes them."""
    for start in range(0, EVENTS, 500):
        await ledger.PostBatch(
            lpb.PostBatchRequest(
                operations=[
                    lpb.BatchOperation(
                        credit=lpb.CreditRequest(
                            request_id=f"wh-{n}",
                            user_id=f"m-{n % MEMBERS}",
                            amount=1,
                            source="bench",
                        )
                    )
                    for n in range(start, min(start + 500, EVENTS))
                ]
            )
        )


async def trickle(ledger: ledger_pb2_grpc.LedgerServiceAsyncStub, sink: Sink) -> list[float]:
    """Light load: one credit every 50 ms, each delivered long before the next; the delays."""
    sink.arrived.clear()
    sink.all_in.clear()
    sink.expected = TRICKLE
    for n in range(TRICKLE):
        await ledger.Credit(
            lpb.CreditRequest(request_id=f"t-{n}", user_id="trickle", amount=1, source="b")
        )
        await asyncio.sleep(0.05)
    await asyncio.wait_for(sink.all_in.wait(), 60)
    return delays(sink.arrived.values())


async def main() -> None:
    sink = Sink()
    server = await asyncio.start_server(sink.serve, "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{sink.port}/hooks"
    # The defaults' poll intervals: deliveries are woken by notifications, not by polling.
    env = {**PROFILES["production"], "WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8"}
    async with (
        scratch_database("bench_webhooks") as database,
        suite(database, ("webhooks", "ledger"), env) as running,
        grpc.aio.insecure_channel(running.address("webhooks")) as webhooks_channel,
        grpc.aio.insecure_channel(running.address("ledger")) as ledger_channel,
    ):
        webhooks = webhooks_pb2_grpc.WebhooksServiceStub(webhooks_channel)
        ledger = ledger_pb2_grpc.LedgerServiceStub(ledger_channel)
        await webhooks.CreateSubscription(
            wpb.CreateSubscriptionRequest(
                subscription=wpb.Subscription(url=url, event_types=["points.credited"])
            )
        )
        sink.expected = EVENTS
        cpu = running.cpu_seconds()
        started = time.time()
        await burst_of_credits(ledger)
        await asyncio.wait_for(sink.all_in.wait(), 600)
        elapsed = max(t for t, _ in sink.arrived.values()) - started
        per_delivery = running.cpu_ms_per(cpu, EVENTS)
        burst = delays(sink.arrived.values())
        light = await trickle(ledger, sink)
        body = json.dumps({"sample": "x" * 200}).encode()
        floor = await floor_rate(url, body, 2000)
    server.close()
    assert len(light) == TRICKLE
    report(
        "webhooks_delivery",
        "production",
        Measured(
            Rate("receiver, plain POSTs x16", floor),
            Rate(
                f"deliveries of {EVENTS:,} events",
                EVENTS / elapsed,
                p50_ms=statistics.median(burst),
                p99_ms=burst[int(len(burst) * 0.99) - 1],
            ),
            per_delivery,
        ),
    )
    print("  (p50/p99: commit to delivery of a burst, queueing included)")
    print(
        f"  light load (one event per 50 ms): commit to delivery p50 "
        f"{statistics.median(light):.0f} ms, p99 {light[int(len(light) * 0.99) - 1]:.0f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
