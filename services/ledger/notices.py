"""Events about lots that no request causes: points about to expire (a configurable window
before expiry, LEDGER_EXPIRING_SOON_DAYS) and pending points that matured. A periodic job
writes each once per lot, marking the lot in the same statement."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from services.common.periodic import traced_work
from services.ledger import due_repository as due_repo

BATCH = 1000
# Maturities further back than this are not announced (lots matured before this feature, or
# while the ledger was down for long, would otherwise arrive as a flood of stale news).
MATURITY_HORIZON = timedelta(days=1)


async def announce(pool: asyncpg.Pool, expiring_window: timedelta | None) -> int:
    """One pass: write what is due, a batch at a time; returns how many events."""
    written = 0
    async with pool.acquire() as conn:
        due = await due_repo.lot_notices_due(conn, expiring_window, MATURITY_HORIZON)
    if not due:
        return 0
    with traced_work("ledger.lot_notices"):
        while True:
            async with pool.acquire() as conn:
                count = await due_repo.announce_lots(conn, expiring_window, MATURITY_HORIZON, BATCH)
            written += count
            if count < BATCH:
                return written
