"""The rules service's sampled gauges: the settlement backlog (awards the ledger has yet to
credit or reverse) and its age, the review queue, each budget's use against its limit in the
current period, and open dead letters."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from services.common import dead_letters
from services.common.db import current_time
from services.common.metrics import Gauge, Readings, SampledGauges
from services.rules import definitions
from services.rules.evaluator import Evaluator
from services.rules.repository import budgets as budgets_repo
from services.rules.repository import program as program_repo
from services.rules.repository import reports as reports_repo
from services.rules.settlement import AWARD, REVERSAL

GAUGES = (
    Gauge("points.rules.settlement.backlog", "{award}", "Awards not yet settled with the ledger"),
    Gauge("points.rules.settlement.age", "s", "Age of the oldest award not yet settled"),
    Gauge("points.rules.review.queue", "{event}", "Events waiting for an operator's review"),
    Gauge("points.rules.budget.used", "{point}", "Points used from each budget this period"),
    Gauge("points.rules.budget.limit", "{point}", "Each budget's points limit per period"),
    dead_letters.GAUGE,
)


def sampled(pool: asyncpg.Pool, evaluator: Evaluator) -> SampledGauges:
    async def sample() -> Mapping[str, Readings]:
        async with pool.acquire() as conn:
            row = await reports_repo.gauges(conn)
            budgets = await program_repo.all_budgets(conn)
            day = evaluator.day_of(await current_time(conn))
            keys = {b.budget_id: definitions.period_key(b.period, day) for b in budgets}
            used = await budgets_repo.budget_usage(conn, list(keys.items()))
            letters = await dead_letters.open_by_kind(conn, (AWARD, REVERSAL))
        return {
            "points.rules.settlement.backlog": [(row["unsettled"], {})],
            "points.rules.settlement.age": [(row["unsettled_age"], {})],
            "points.rules.review.queue": [(row["in_review"], {})],
            "points.rules.budget.used": [
                (used.get(b.budget_id, 0), {"points.budget": b.budget_id}) for b in budgets
            ],
            "points.rules.budget.limit": [
                (b.points_limit, {"points.budget": b.budget_id})
                for b in budgets
                if b.points_limit > 0
            ],
            dead_letters.GAUGE.name: letters,
        }

    return SampledGauges(GAUGES, sample)
