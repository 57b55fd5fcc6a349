"""Expiry of due lots, set-based, in chunks of members so no run locks everyone at once."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.common.db import current_time
from services.ledger import due_repository as due_repo
from services.ledger import measures

CHUNK_MEMBERS = 2000


@dataclass
class ExpiryTotals:
    lots: int = 0
    points: int = 0
    members: int = 0


async def expire_due(pool: asyncpg.Pool, as_of: datetime, request_id: str) -> ExpiryTotals:
    """Expire what is left of every lot with expires_at <= as_of, and record the run.
    Re-running finds nothing."""
    async with pool.acquire() as conn:
        started = await current_time(conn)
    clock = time.perf_counter()
    totals = await _expire_chunks(pool, as_of, request_id)
    measures.expiry_duration.record(time.perf_counter() - clock)
    measures.points.add(totals.points, {"points.flow": "expired"})
    async with pool.acquire() as conn:
        run = (totals.lots, totals.points, totals.members)
        await due_repo.record_expiry_run(conn, request_id, as_of, started, run)
    return totals


async def _expire_chunks(pool: asyncpg.Pool, as_of: datetime, request_id: str) -> ExpiryTotals:
    totals = ExpiryTotals()
    after = ""
    while True:
        async with pool.acquire() as conn, conn.transaction():
            users = await due_repo.members_with_due_lots(conn, as_of, after, CHUNK_MEMBERS)
            if not users:
                return totals
            after = users[-1]
            row = await due_repo.expire_members(conn, as_of, users, request_id)
            totals.lots += row["lots"]
            totals.points += row["points"]
            totals.members += row["members"]
