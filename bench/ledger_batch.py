"""PostBatch of 1,000 credits (`ledger_batch`): transfers per second against pgbench's
TPC-B-like rate (-c 8) on the same server in the same run.

Goal (issue 13): >= 6x pgbench (about 20,000 transfers/s here). Both tracing profiles; CPU and
round trips per transfer.
"""

from __future__ import annotations

import asyncio
import os
import time

import grpc

from bench.support import (
    Measured,
    Rate,
    SpanSink,
    each_profile,
    pgbench_tps,
    report,
    scratch_database,
    suite,
)
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

BATCH = 1000
BATCHES = int(os.environ.get("BENCH_BATCHES", "30"))


def batch(n: int) -> pb.PostBatchRequest:
    return pb.PostBatchRequest(
        operations=[
            pb.BatchOperation(
                credit=pb.CreditRequest(
                    request_id=f"b{n}-{i}",
                    user_id=f"member-{(n * BATCH + i) % 20000}",
                    amount=5,
                    source="bench",
                )
            )
            for i in range(BATCH)
        ]
    )


async def measure(sink: SpanSink, profile: str) -> None:
    async with scratch_database("bench_pgbench") as url:
        floor = await asyncio.to_thread(pgbench_tps, url, 8, 10)
    async with (
        scratch_database("bench_batch") as url,
        suite(url, ("ledger",), sink.env(profile)) as running,
        grpc.aio.insecure_channel(running.address("ledger")) as channel,
    ):
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        requests = [batch(n) for n in range(BATCHES + 1)]
        await ledger.PostBatch(requests[0])  # warm up
        cpu = running.cpu_seconds()
        started = time.perf_counter()
        for request in requests[1:]:
            response = await ledger.PostBatch(request)
            assert all(r.WhichOneof("result") == "credit" for r in response.results)
        elapsed = time.perf_counter() - started
        measured = Measured(
            Rate("pgbench tpcb-like -c 8 (tps)", floor),
            Rate(f"PostBatch x{BATCH}, one at a time", BATCHES * BATCH / elapsed),
            running.cpu_ms_per(cpu, BATCHES * BATCH),
        )
        if profile == "full":

            async def one_more() -> int:
                await ledger.PostBatch(batch(BATCHES + 1))
                return BATCH

            measured.round_trips = await sink.per_operation(one_more)
        # Ten batches at once, to show that batches do not serialise everything.
        started = time.perf_counter()
        await asyncio.gather(
            *(ledger.PostBatch(batch(n)) for n in range(BATCHES + 2, BATCHES + 12))
        )
        at_once = 10 * BATCH / (time.perf_counter() - started)
        assert (await ledger.Audit(pb.AuditRequest())).ok
    report("ledger_batch", profile, measured)
    print(f"  10 batches at once: {at_once:9.0f} transfers/s")


if __name__ == "__main__":
    asyncio.run(each_profile(measure))
