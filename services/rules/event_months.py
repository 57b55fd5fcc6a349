"""The rules service's events, partitioned by month (docs/scaling.md): this month and three
ahead are made, and, with RULES_EVENT_RETENTION_DAYS, months past it are dropped whole,
except one holding an event whose awards still wait for an operator's review."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from services.common import partitions
from services.common.db import current_time

WAITING_FOR_REVIEW = (
    "p.decision = 'REVIEW' AND EXISTS (SELECT FROM awards a WHERE a.user_id = p.user_id "
    "AND a.event_id = p.event_id AND a.review = 'PENDING')"
)


async def keep(pool: asyncpg.Pool, retention: timedelta | None) -> None:
    async with pool.acquire() as conn:
        now = await current_time(conn)
        await partitions.ensure_months(conn, "events", now)
        if retention is not None:
            await partitions.drop_months_before(
                conn, "events", now - retention, keep_while=WAITING_FOR_REVIEW
            )
