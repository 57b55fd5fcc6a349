"""The optimistic budget spend: a conditional update that never lets concurrent events
overspend, and says so when it loses the race (the event then runs again with the row locked)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from services.common.server import ServiceHost
from services.rules.repository import budgets as budgets_repo


async def test_a_spend_that_would_overrun_a_concurrent_one_reports_contention(
    database_url: str, rules_host: ServiceHost
) -> None:
    budget = f"race-{uuid.uuid4().hex[:8]}"
    settings = {"search_path": "rules"}  # the rules service's schema (created by its host)
    first = await asyncpg.connect(database_url, server_settings=settings)
    second = await asyncpg.connect(database_url, server_settings=settings)
    try:
        async with first.transaction():
            assert await budgets_repo.spend_within_limits(first, [(budget, "total", 60, 100)]) == {
                budget: 60
            }
            # The second waits on the first's row lock; it decides once the first commits.
            racing = asyncio.create_task(
                budgets_repo.spend_within_limits(second, [(budget, "total", 50, 100)])
            )
            await asyncio.sleep(0.3)
            assert not racing.done()
        assert await racing is None  # 60 + 50 > 100: nothing spent, caller must start over
        assert await budgets_repo.spend_within_limits(second, [(budget, "total", 40, 100)]) == {
            budget: 100
        }
        assert await budgets_repo.budget_usage(second, [(budget, "total")]) == {budget: 100}
        assert await budgets_repo.spend_within_limits(second, [(budget, "total", 1, 100)]) is None
    finally:
        await first.close()
        await second.close()
