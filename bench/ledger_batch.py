"""PostBatch of 1,000 credits: transfers per second (target, issue 4: >= 20,000/s).

Baseline in the same run: pgbench's TPC-B-like rate on the same server, for scale.
"""

from __future__ import annotations

import asyncio
import os
import time

from bench.support import ledger_process, pgbench_tps, scratch_database
from loyalty.ledger.v1 import ledger_pb2 as pb

BATCH = 1000
BATCHES = int(os.environ.get("BENCH_BATCHES", "30"))


async def main() -> None:
    async with scratch_database("bench_pgbench") as url:
        baseline = await asyncio.to_thread(pgbench_tps, url, 8, 10)
    async with scratch_database("bench_batch") as url, ledger_process(url) as ledger:

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

        requests = [batch(n) for n in range(BATCHES + 1)]
        await ledger.PostBatch(requests[0])  # warm up
        started = time.perf_counter()
        for request in requests[1:]:
            response = await ledger.PostBatch(request)
            assert all(r.WhichOneof("result") == "credit" for r in response.results)
        elapsed = time.perf_counter() - started
        # Two batches at once (two clients), to show batches do not serialise everything.
        started2 = time.perf_counter()
        more = [batch(n) for n in range(BATCHES + 1, BATCHES + 11)]
        await asyncio.gather(*(ledger.PostBatch(r) for r in more))
        elapsed2 = time.perf_counter() - started2
        audit = await ledger.Audit(pb.AuditRequest())
    rate = BATCHES * BATCH / elapsed
    print(f"pgbench tpcb-like -c 8        : {baseline:9.0f} tps")
    print(
        f"PostBatch x{BATCH} (sequential) : {rate:9.0f} transfers/s  "
        f"({elapsed / BATCHES * 1000:.0f} ms per batch), {rate / baseline:.1f}x pgbench"
    )
    print(f"PostBatch x{BATCH} (10 at once) : {10 * BATCH / elapsed2:9.0f} transfers/s")
    print(f"audit ok: {audit.ok}")


if __name__ == "__main__":
    asyncio.run(main())
