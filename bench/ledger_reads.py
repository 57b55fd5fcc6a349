"""GetBalance at 64 concurrent clients with 100,000 members loaded (target: p99 <= 5 ms).

Baseline in the same run: `pgbench -S` (select-only, 8 clients) on the same server.
"""

from __future__ import annotations

import asyncio
import os
import random

from bench.support import (
    closed_loop,
    ledger_process,
    load_members,
    p,
    pgbench_tps,
    scratch_database,
)
from loyalty.ledger.v1 import ledger_pb2 as pb

MEMBERS = 100_000
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))


async def main() -> None:
    async with scratch_database("bench_pgbench") as url:
        baseline = await asyncio.to_thread(pgbench_tps, url, 8, int(SECONDS), "-S")
    async with scratch_database("bench_reads") as url, ledger_process(url) as ledger:
        # 5 lots per member expiring over the next year, so "expiring soon" has work to do.
        await load_members(url, MEMBERS, 5, "now() + (g % 365 + 1) * interval '1 day'")
        rng = random.Random(7)

        async def call(client: int, i: int) -> None:
            user = f"member-{rng.randrange(1, MEMBERS + 1)}"
            reply = await ledger.GetBalance(
                pb.GetBalanceRequest(user_id=user, expiring_within_days=30)
            )
            assert reply.balance.available == 50

        await closed_loop(64, 1, call)
        count, latencies = await closed_loop(64, SECONDS, call)
    print(f"pgbench -S -c 8           : {baseline:9.0f} tps")
    print(
        f"GetBalance x64 ({MEMBERS} members): {count / SECONDS:9.0f} rps  "
        f"ratio {count / SECONDS / baseline:.2f}"
    )
    print(f"latency p50 {p(latencies, 0.5):.1f} ms  p99 {p(latencies, 0.99):.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
