"""The ledger's background jobs, each one pass run by the chassis' periodic runner.

- Hold sweep: releases holds whose deadline passed (reads already treat them as released).
- Expiry: expires what is left of every due lot, on a schedule (LEDGER_EXPIRY_SWEEP_SECONDS),
  so balances, liability and the audit agree without anyone calling ExpirePoints.
- Transfer months: transfers are partitioned by month; this month and three ahead exist (at
  start too, before the ledger serves).
(Request ids are forgotten by the chassis' job, `idempotency.keep_requests`.)
Expiry and the months run on one replica at a time (advisory lock); holds are
locked row by row, so every replica may sweep.
"""

from __future__ import annotations

import logging

import asyncpg

from services.common import partitions
from services.common.db import current_time
from services.common.periodic import Job, traced_work
from services.ledger import due_repository as due_repo
from services.ledger import holds_repository as holds_repo
from services.ledger import notices
from services.ledger import repository as repo
from services.ledger.config import LedgerConfig
from services.ledger.expiry import expire_due
from services.ledger.operations import Operations

log = logging.getLogger(__name__)
HOLD_BATCH = 500


async def release_overdue_holds(pool: asyncpg.Pool, ops: Operations) -> int:
    """One pass; returns how many holds it released."""
    async with pool.acquire() as conn:
        due = await holds_repo.due_holds(conn, HOLD_BATCH)
    if not due:
        return 0
    with traced_work("ledger.release_overdue_holds", attributes={"points.holds": len(due)}):
        return await _release(pool, ops, due)


async def _release(pool: asyncpg.Pool, ops: Operations, due: list[asyncpg.Record]) -> int:
    released = 0
    for item in due:
        async with pool.acquire() as conn, conn.transaction():
            now = await repo.lock_members(conn, [item["user_id"]])
            hold = await holds_repo.get_hold(conn, item["user_id"], item["hold_id"])
            if hold is None or hold["status"] != "ACTIVE" or not hold["overdue"]:
                continue  # resolved meanwhile
            await ops.release_hold_row(
                conn, now, hold, "EXPIRED", f"hold-expired:{hold['hold_id']}"
            )
            await repo.notify_balance(conn, item["user_id"])
            released += 1
    if released:
        log.info("released overdue holds", extra={"count": released})
    return released


async def expire_now(pool: asyncpg.Pool) -> int:
    """Expire every lot due by now (database time); returns the points expired."""
    async with pool.acquire() as conn:
        now = await current_time(conn)
        due = await due_repo.any_lot_due(conn, now)
    request_id = f"scheduled:{now.isoformat()}"
    if due:
        with traced_work("ledger.expiry", attributes={"points.request_id": request_id}):
            totals = await expire_due(pool, now, request_id)
    else:  # still recorded: the last run is what operators check expiry by
        totals = await expire_due(pool, now, request_id)
    if totals.points:
        log.info(
            "expired due lots",
            extra={"lots": totals.lots, "points": totals.points, "members": totals.members},
        )
    return totals.points


def jobs(pool: asyncpg.Pool, ops: Operations, config: LedgerConfig) -> list[Job]:
    scheduled = [
        Job(
            "lot-notices",
            config.notice_seconds,
            lambda: notices.announce(pool, config.expiring_soon),
            once_across_replicas=True,
        ),
        Job("hold-sweep", config.hold_sweep_seconds, lambda: release_overdue_holds(pool, ops)),
        Job(
            "transfer-months",
            3600.0,
            lambda: partitions.keep(pool, "transfers"),  # never dropped: the ledger's record
            once_across_replicas=True,
            at_start=True,
        ),
    ]
    if config.expiry_sweep_seconds > 0:
        scheduled.append(
            Job(
                "expiry",
                config.expiry_sweep_seconds,
                lambda: expire_now(pool),
                once_across_replicas=True,
            )
        )
    return scheduled
