"""Single Credit/Debit RPCs from 64 concurrent gRPC clients, against pgbench on the same server.

Target (issue 4): ratio >= 1.0 against `pgbench -b tpcb-like -c 8`, p99 <= 50 ms.
"""

from __future__ import annotations

import asyncio
import os

from bench.support import closed_loop, ledger_process, p, pgbench_tps, scratch_database
from loyalty.ledger.v1 import ledger_pb2 as pb

CLIENTS = 64
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))


async def main() -> None:
    async with scratch_database("bench_pgbench") as url:
        baseline = await asyncio.to_thread(pgbench_tps, url, 8, int(SECONDS))
    async with scratch_database("bench_ledger") as url, ledger_process(url) as ledger:
        # Each client owns a member; credits dominate, with a debit every fourth call.
        async def call(client: int, i: int) -> None:
            user = f"bench-{client}"
            request_id = f"{client}-{i}"
            if i % 4 == 3:
                await ledger.Debit(pb.DebitRequest(request_id=request_id, user_id=user, amount=1))
            else:
                await ledger.Credit(
                    pb.CreditRequest(request_id=request_id, user_id=user, amount=10, source="bench")
                )

        await closed_loop(CLIENTS, 1, call)  # warm up (pool, caches)
        count, latencies = await closed_loop(CLIENTS, SECONDS, call)
        audit = await ledger.Audit(pb.AuditRequest())
    tps = count / SECONDS
    print(f"pgbench tpcb-like -c 8 : {baseline:9.0f} tps")
    print(f"ledger Credit/Debit x{CLIENTS}: {tps:9.0f} transfers/s  ratio {tps / baseline:.2f}")
    print(f"latency p50 {p(latencies, 0.5):.1f} ms  p99 {p(latencies, 0.99):.1f} ms")
    print(f"audit ok: {audit.ok}")


if __name__ == "__main__":
    asyncio.run(main())
