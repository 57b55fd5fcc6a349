"""GetBalance at 64 concurrent clients with 100,000 members loaded (`ledger_read`).

Goal (issue 13): >= 0.8 of the ledger's health RPC x64 on the same process. Both tracing
profiles; CPU and round trips per operation.
"""

from __future__ import annotations

import asyncio
import os
import random

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.support import (
    SpanSink,
    floor_and_path,
    load_members,
    profiles,
    report,
    round_trips,
    scratch_database,
    span_sink,
    suite,
)
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

MEMBERS = int(os.environ.get("BENCH_MEMBERS", "100000"))
CLIENTS = 64


async def measure(sink: SpanSink, url: str, profile: str) -> None:
    async with (
        suite(url, ("ledger",), sink.env(profile)) as running,
        grpc.aio.insecure_channel(running.address("ledger")) as channel,
    ):
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        rng = random.Random(7)

        async def check(client: int, i: int) -> None:
            await health.Check(health_pb2.HealthCheckRequest())

        async def call(client: int, i: int) -> None:
            user = f"member-{rng.randrange(1, MEMBERS + 1)}"
            reply = await ledger.GetBalance(
                pb.GetBalanceRequest(user_id=user, expiring_within_days=30)
            )
            assert reply.balance.available == 50

        measured = await floor_and_path(
            running,
            CLIENTS,
            (f"ledger health x{CLIENTS}", check),
            (f"GetBalance x{CLIENTS} ({MEMBERS:,} members)", call),
        )
        measured.round_trips = await round_trips(sink, profile, call, CLIENTS)
    report("ledger_read", profile, measured)


async def main() -> None:
    async with span_sink() as sink, scratch_database("bench_reads") as url:
        # The schema comes with the first ledger; then 5 lots per member expiring over the
        # next year, so that "expiring soon" has work to do.
        async with suite(url, ("ledger",)):
            pass
        await load_members(url, MEMBERS, 5, "now() + (g % 365 + 1) * interval '1 day'")
        for profile in profiles():
            await measure(sink, url, profile)


if __name__ == "__main__":
    asyncio.run(main())
