"""WatchBalance: time from a Credit's acknowledgement to the streamed change (target: the
change arrives within 100 ms of commit). Baseline: the Credit round trip itself."""

from __future__ import annotations

import asyncio
import statistics
import time

from bench.support import ledger_process, scratch_database
from loyalty.ledger.v1 import ledger_pb2 as pb

ROUNDS = 200


async def main() -> None:
    async with scratch_database("bench_watch") as url, ledger_process(url) as ledger:
        stream = ledger.WatchBalance(pb.WatchBalanceRequest(user_id="watched"))
        await stream.read()
        delivery, round_trip = [], []
        for n in range(ROUNDS):
            sent = time.perf_counter()
            await ledger.Credit(
                pb.CreditRequest(request_id=f"w{n}", user_id="watched", amount=1, source="bench")
            )
            acknowledged = time.perf_counter()
            update = await asyncio.wait_for(stream.read(), 5)
            received = time.perf_counter()
            assert isinstance(update, pb.WatchBalanceResponse)
            assert update.balance.available == n + 1
            round_trip.append(acknowledged - sent)
            delivery.append(received - sent)
        stream.cancel()
    ms = [1000 * d for d in delivery]
    print(f"Credit round trip  p50 {1000 * statistics.median(round_trip):.1f} ms")
    print(
        f"change delivered   p50 {statistics.median(ms):.1f} ms  max {max(ms):.1f} ms "
        "after the Credit was sent (commit happens before the acknowledgement)"
    )


if __name__ == "__main__":
    asyncio.run(main())
