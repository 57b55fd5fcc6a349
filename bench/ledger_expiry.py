"""ExpirePoints over 1,000,000 due lots (target: <= 30 s), then an audit.

Baseline in the same run: a plain `UPDATE` zeroing the same number of rows of a copy of the
lots table, the floor for any set-based expiry on this machine.
"""

from __future__ import annotations

import asyncio
import os
import time

import asyncpg

from bench.support import ledger_process, load_members, scratch_database
from loyalty.ledger.v1 import ledger_pb2 as pb

LOTS = int(os.environ.get("BENCH_LOTS", "1000000"))
PER_MEMBER = 10


async def main() -> None:
    async with scratch_database("bench_expiry") as url, ledger_process(url) as ledger:
        started = time.perf_counter()
        await load_members(url, LOTS // PER_MEMBER, PER_MEMBER, "now() - interval '1 day'")
        loaded = time.perf_counter() - started
        conn = await asyncpg.connect(url, server_settings={"search_path": "ledger"})
        await conn.execute("CREATE TABLE lots_copy AS SELECT * FROM lots")
        started = time.perf_counter()
        await conn.execute("UPDATE lots_copy SET expired = remaining, remaining = 0")
        baseline = time.perf_counter() - started
        await conn.execute("DROP TABLE lots_copy")
        await conn.close()
        started = time.perf_counter()
        result = await ledger.ExpirePoints(pb.ExpirePointsRequest(request_id="bench"), timeout=600)
        elapsed = time.perf_counter() - started
        again = await ledger.ExpirePoints(pb.ExpirePointsRequest(request_id="bench-2"))
        audit = await ledger.Audit(pb.AuditRequest(), timeout=600)
    print(f"loaded {LOTS} lots in {loaded:.1f} s")
    print(f"baseline UPDATE of {LOTS} rows : {baseline:6.1f} s")
    print(
        f"ExpirePoints                : {elapsed:6.1f} s  ({result.lots_expired} lots, "
        f"{result.points_expired} points, {result.members_affected} members), "
        f"{elapsed / baseline:.1f}x baseline"
    )
    print(f"second run expired {again.lots_expired} lots; audit ok: {audit.ok}")


if __name__ == "__main__":
    asyncio.run(main())
