"""Releases holds whose deadline passed (reads already treat them as released)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.ledger import repository as repo
from services.ledger.operations import Operations

log = logging.getLogger(__name__)
BATCH = 500


async def release_overdue_holds(pool: asyncpg.Pool, ops: Operations) -> int:
    """One pass; returns how many holds it released."""
    due = await pool.fetch(
        "SELECT user_id, hold_id FROM holds WHERE status = 'ACTIVE' AND deadline_at <= now() "
        "ORDER BY deadline_at LIMIT $1",
        BATCH,
    )
    released = 0
    for item in due:
        async with pool.acquire() as conn, conn.transaction():
            now = await repo.lock_members(conn, [item["user_id"]])
            hold = await repo.get_hold(conn, item["user_id"], item["hold_id"])
            if hold is None or hold["status"] != "ACTIVE" or not hold["overdue"]:
                continue  # resolved meanwhile
            await ops.release_hold_row(
                conn, now, hold, "EXPIRED", f"hold-expired:{hold['hold_id']}"
            )
            await conn.execute("SELECT pg_notify('ledger_balance', $1)", item["user_id"])
            released += 1
    return released


async def sweep_forever(pool: asyncpg.Pool, ops: Operations, interval: float) -> None:
    while True:
        try:
            released = await release_overdue_holds(pool, ops)
            if released:
                log.info("released overdue holds", extra={"count": released})
        except (asyncpg.PostgresError, OSError):
            log.exception("hold sweep failed; retrying")
        await asyncio.sleep(interval)
