"""Single Credit/Debit RPCs from 64 concurrent gRPC clients (`ledger_write`).

Goal (issue 13): >= 0.6 of the ledger's health RPC x64 on the same process, p99 <= 2x the
floor's p99. Both tracing profiles; CPU and round trips per operation.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.support import (
    SpanSink,
    each_profile,
    floor_and_path,
    report,
    round_trips,
    scratch_database,
    suite,
)
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

CLIENTS = 64


async def measure(sink: SpanSink, profile: str) -> None:
    async with (
        scratch_database("bench_ledger") as url,
        suite(url, ("ledger",), sink.env(profile)) as running,
        grpc.aio.insecure_channel(running.address("ledger")) as channel,
    ):
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)

        async def check(client: int, i: int) -> None:
            await health.Check(health_pb2.HealthCheckRequest())

        # Each client owns a member; credits dominate, with a debit every fourth call.
        async def call(client: int, i: int) -> None:
            user, request_id = f"bench-{client}", uuid.uuid4().hex
            if i % 4 == 3:
                await ledger.Debit(pb.DebitRequest(request_id=request_id, user_id=user, amount=1))
            else:
                await ledger.Credit(
                    pb.CreditRequest(request_id=request_id, user_id=user, amount=10, source="bench")
                )

        measured = await floor_and_path(
            running,
            CLIENTS,
            (f"ledger health x{CLIENTS}", check),
            (f"Credit/Debit x{CLIENTS}", call),
        )
        measured.round_trips = await round_trips(sink, profile, call, CLIENTS)
        assert (await ledger.Audit(pb.AuditRequest())).ok
    report("ledger_write", profile, measured)


if __name__ == "__main__":
    asyncio.run(each_profile(measure))
