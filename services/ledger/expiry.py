"""Expiry of due lots, set-based, in chunks of members so no run locks everyone at once."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.common.db import current_time
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
        await conn.execute(
            """
            INSERT INTO expiry_runs (request_id, as_of, started_at, lots, points, members)
            VALUES ($1, $2, $3, $4, $5, $6)
            """,
            request_id,
            as_of,
            started,
            totals.lots,
            totals.points,
            totals.members,
        )
    return totals


async def _expire_chunks(pool: asyncpg.Pool, as_of: datetime, request_id: str) -> ExpiryTotals:
    totals = ExpiryTotals()
    after = ""
    while True:
        async with pool.acquire() as conn, conn.transaction():
            users = [
                r["user_id"]
                for r in await conn.fetch(
                    """
                    SELECT DISTINCT user_id FROM lots
                    WHERE remaining > 0 AND expires_at <= $1 AND user_id > $2
                    ORDER BY user_id LIMIT $3
                    """,
                    as_of,
                    after,
                    CHUNK_MEMBERS,
                )
            ]
            if not users:
                return totals
            after = users[-1]
            # Member rows first (the ledger's lock order), then their lots, in one statement.
            row = await conn.fetchrow(
                """
                WITH locked AS (
                    SELECT user_id FROM members WHERE user_id = ANY($2::text[])
                    ORDER BY user_id FOR UPDATE
                ), due AS (
                    SELECT l.user_id, l.lot_id, l.remaining FROM lots l
                    WHERE l.user_id IN (SELECT user_id FROM locked)
                      AND l.remaining > 0 AND l.expires_at <= $1
                    FOR UPDATE OF l
                ), expired AS (
                    UPDATE lots l SET expired = l.expired + d.remaining, remaining = 0
                    FROM due d WHERE l.user_id = d.user_id AND l.lot_id = d.lot_id
                    RETURNING d.user_id, d.remaining
                ), per_member AS (
                    SELECT user_id, sum(remaining)::bigint AS amount, count(*) AS lots
                    FROM expired GROUP BY user_id
                ), transfers_made AS (
                    INSERT INTO transfers (user_id, kind, debit_account, credit_account, amount,
                                           request_id, reason_code)
                    SELECT user_id, 'EXPIRY', 'member', 'expiry', amount, $3, 'LOTS_EXPIRED'
                    FROM per_member
                    RETURNING user_id
                ), announced AS (
                    INSERT INTO outbox (type, member_id, data)
                    SELECT 'points.expired', user_id,
                           jsonb_build_object('amount', amount, 'lots', lots, 'request_id', $3)
                    FROM per_member
                    RETURNING 1
                ), members_updated AS (
                    UPDATE members m
                    SET balance = m.balance - p.amount, expired = m.expired + p.amount,
                        updated_at = now()
                    FROM per_member p WHERE m.user_id = p.user_id
                    RETURNING m.user_id
                )
                SELECT count(*) AS members, coalesce(sum(lots), 0)::bigint AS lots,
                       coalesce(sum(amount), 0)::bigint AS points,
                       (SELECT count(pg_notify('ledger_balance', user_id)) FROM members_updated)
                           AS notified,
                       (SELECT count(*) FROM transfers_made) AS transfers,
                       (SELECT count(*) FROM announced) AS announced
                FROM per_member
                """,
                as_of,
                users,
                f"expire:{request_id}",
            )
            assert row is not None
            totals.lots += row["lots"]
            totals.points += row["points"]
            totals.members += row["members"]
