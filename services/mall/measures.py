"""The mall's sampled gauges: unfinished redemption sagas per step with the age of the oldest,
and open dead letters."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from services.common import dead_letters
from services.common.metrics import Gauge, Readings, SampledGauges
from services.mall import repository as repo

GAUGES = (
    Gauge("points.mall.sagas.unfinished", "{redemption}", "Redemptions not yet final, by step"),
    Gauge("points.mall.sagas.age", "s", "Age of the oldest unfinished redemption, by step"),
    dead_letters.GAUGE,
)


def sampled(pool: asyncpg.Pool) -> SampledGauges:
    async def sample() -> Mapping[str, Readings]:
        async with pool.acquire() as conn:
            steps = await repo.gauges(conn)
            letters = await dead_letters.open_by_kind(conn)
        return {
            "points.mall.sagas.unfinished": [(r["n"], {"points.step": r["step"]}) for r in steps],
            "points.mall.sagas.age": [(r["oldest"], {"points.step": r["step"]}) for r in steps],
            dead_letters.GAUGE.name: letters,
        }

    return SampledGauges(GAUGES, sample)
