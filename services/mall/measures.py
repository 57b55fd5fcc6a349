"""The mall's sampled gauges: unfinished redemption sagas per step with the age of the oldest,
and open dead letters."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from services.common import dead_letters
from services.common.metrics import Gauge, Readings, SampledGauges
from services.mall import repository as repo
from services.mall.lottery import PRIZE_LETTER

# Every step a redemption passes before it is final, each reported (at 0 when empty).
UNFINISHED = ("STARTED", "STOCK_RESERVED", "HOLD_PLACED", "FULFILLED")

GAUGES = (
    Gauge("points.mall.sagas.unfinished", "{redemption}", "Redemptions not yet final, by step"),
    Gauge("points.mall.sagas.age", "s", "Age of the oldest unfinished redemption, by step"),
    dead_letters.GAUGE,
)


def sampled(pool: asyncpg.Pool) -> SampledGauges:
    async def sample() -> Mapping[str, Readings]:
        async with pool.acquire() as conn:
            steps = await repo.gauges(conn)
            letters = await dead_letters.open_by_kind(conn, (PRIZE_LETTER,))
        found = {r["step"]: r for r in steps}
        counts = {step: found[step]["n"] if step in found else 0 for step in UNFINISHED}
        ages = {step: found[step]["oldest"] if step in found else 0.0 for step in UNFINISHED}
        return {
            "points.mall.sagas.unfinished": [(n, {"points.step": s}) for s, n in counts.items()],
            "points.mall.sagas.age": [(age, {"points.step": s}) for s, age in ages.items()],
            dead_letters.GAUGE.name: letters,
        }

    return SampledGauges(GAUGES, sample)
