"""SQL of lots coming due: expiry runs over members with due lots, and the notices of lots about
to expire or just matured. Functions run inside the caller's transaction."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from services.common.db import Conn

Record = asyncpg.Record


async def any_lot_due(conn: Conn, as_of: datetime) -> bool:
    due: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM lots WHERE remaining > 0 AND expires_at <= $1)", as_of
    )
    return due


async def lot_notices_due(
    conn: Conn, expiring_window: timedelta | None, maturity_horizon: timedelta
) -> bool:
    """Whether any lot has an "expiring soon" or "matured" event to write (an index probe)."""
    due: bool = await conn.fetchval(
        """
        SELECT EXISTS (SELECT FROM lots WHERE $1::interval IS NOT NULL AND remaining > 0
                         AND expiring_announced_at IS NULL
                         AND expires_at > now() AND expires_at <= now() + $1::interval)
            OR EXISTS (SELECT FROM lots WHERE maturity_announced_at IS NULL
                         AND matures_at > created_at
                         AND matures_at <= now() AND matures_at > now() - $2::interval)
        """,
        expiring_window,
        maturity_horizon,
    )
    return due


async def announce_lots(
    conn: Conn, expiring_window: timedelta | None, maturity_horizon: timedelta, limit: int
) -> int:
    """Write up to `limit` of each event (points.expiring_soon, points.pending_matured) and
    mark their lots, in one statement. Lots other writers hold are skipped, never waited for
    (so this never joins the ledger's member-then-lot lock order)."""
    written: int = await conn.fetchval(
        """
        WITH expiring AS (
            SELECT user_id, lot_id FROM lots
            WHERE $1::interval IS NOT NULL AND remaining > 0 AND expiring_announced_at IS NULL
              AND expires_at > now() AND expires_at <= now() + $1::interval
            ORDER BY expires_at LIMIT $3 FOR UPDATE SKIP LOCKED
        ), warned AS (
            UPDATE lots l SET expiring_announced_at = now() FROM expiring e
            WHERE l.user_id = e.user_id AND l.lot_id = e.lot_id
            RETURNING l.user_id, l.lot_id, l.remaining, l.expires_at
        ), maturing AS (
            SELECT user_id, lot_id FROM lots
            WHERE maturity_announced_at IS NULL AND matures_at > created_at
              AND matures_at <= now() AND matures_at > now() - $2::interval
            ORDER BY matures_at LIMIT $3 FOR UPDATE SKIP LOCKED
        ), matured AS (
            UPDATE lots l SET maturity_announced_at = now() FROM maturing m
            WHERE l.user_id = m.user_id AND l.lot_id = m.lot_id
            RETURNING l.user_id, l.lot_id, l.remaining, l.granted, l.matures_at, l.expires_at
        ), written AS (
            INSERT INTO outbox (type, member_id, data)
            SELECT 'points.expiring_soon', user_id, jsonb_build_object(
                'lot_id', lot_id::text, 'amount', remaining,
                'expires_at', to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
            FROM warned
            UNION ALL
            SELECT 'points.pending_matured', user_id, jsonb_build_object(
                'lot_id', lot_id::text, 'amount', granted,
                'matured_at', to_char(matures_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                'expires_at', to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
            FROM matured
            RETURNING 1
        )
        SELECT count(*) FROM written
        """,
        expiring_window,
        maturity_horizon,
        limit,
    )
    return written


async def members_with_due_lots(conn: Conn, as_of: datetime, after: str, limit: int) -> list[str]:
    """Up to `limit` members after `after` (by id) with points left in lots due by `as_of`."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT user_id FROM lots
        WHERE remaining > 0 AND expires_at <= $1 AND user_id > $2
        ORDER BY user_id LIMIT $3
        """,
        as_of,
        after,
        limit,
    )
    return [r["user_id"] for r in rows]


async def expire_members(conn: Conn, as_of: datetime, users: list[str], request_id: str) -> Record:
    """Expire what is left of the members' lots due by `as_of`, in one statement: member rows
    first (the ledger's lock order), then their lots; one EXPIRY transfer, one event and one
    balance notice per member. Returns the chunk's (members, lots, points)."""
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
    return row


async def record_expiry_run(
    conn: Conn, request_id: str, as_of: datetime, started: datetime, totals: tuple[int, int, int]
) -> None:
    """Keep a finished run: (lots, points, members) expired."""
    await conn.execute(
        """
        INSERT INTO expiry_runs (request_id, as_of, started_at, lots, points, members)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        request_id,
        as_of,
        started,
        *totals,
    )
