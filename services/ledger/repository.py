"""SQL of the ledger. Every function runs on a connection inside the caller's transaction.

Locking order is always member row first, then that member's lots and holds, which keeps
concurrent writers (RPCs, the hold sweeper, expiry runs) free of deadlocks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.common.db import Conn

Record = asyncpg.Record


@dataclass(frozen=True)
class Taken:
    lot_id: int
    amount: int
    expires_at: datetime


async def lock_members(conn: Conn, user_ids: Sequence[str]) -> datetime:
    """Create missing members and lock them in user-id order; return database time."""
    now: datetime = await conn.fetchval(
        """
        WITH locked AS (
            INSERT INTO members AS m (user_id)
            SELECT DISTINCT unnest($1::text[]) ORDER BY 1
            ON CONFLICT (user_id) DO UPDATE SET updated_at = m.updated_at
            RETURNING 1
        )
        SELECT now() FROM (SELECT count(*) FROM locked) AS done
        """,
        list(user_ids),
    )
    return now


async def credit_many(
    conn: Conn,
    credits: Sequence[tuple[str, str, str, str, int, str, str, str, datetime, datetime | None]],
) -> list[Record]:
    """Set-based credits: (user_id, kind, debit_account, source, amount, request_id,
    reason_code, metadata_json, expires_at, matures_at) in, one transfer + lot each, and one
    balance update per member. Rows come back in input order."""
    columns = list(zip(*credits, strict=True))
    return list(
        await conn.fetch(
            """
            WITH input AS (
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                     $5::bigint[], $6::text[], $7::text[], $8::jsonb[],
                                     $9::timestamptz[], $10::timestamptz[])
                    WITH ORDINALITY AS i(user_id, kind, debit_account, source, amount,
                                         request_id, reason_code, metadata, expires_at,
                                         matures_at, n)
            ), made AS (
                INSERT INTO transfers (user_id, kind, debit_account, credit_account, amount,
                                       request_id, reason_code, metadata)
                SELECT user_id, kind, debit_account, 'member', amount, request_id, reason_code,
                       metadata
                FROM input ORDER BY n
                RETURNING *
            ), numbered AS (
                -- (user_id, request_id) is unique within a batch: it ties rows back to input.
                SELECT made.*, i.n, i.source, i.expires_at, i.matures_at
                FROM made JOIN input i USING (user_id, request_id)
            ), lots_made AS (
                INSERT INTO lots (user_id, transfer_id, source, granted, remaining, expires_at,
                                  matures_at)
                SELECT user_id, transfer_id, source, amount, amount, expires_at, matures_at
                FROM numbered
                RETURNING transfer_id, lot_id
            ), per_member AS (
                SELECT user_id, sum(amount)::bigint AS amount FROM input GROUP BY user_id
            ), members_updated AS (
                UPDATE members m SET balance = m.balance + p.amount,
                                     earned = m.earned + p.amount, updated_at = now()
                FROM per_member p WHERE m.user_id = p.user_id
            )
            SELECT t.*, l.lot_id
            FROM numbered t JOIN lots_made l USING (transfer_id)
            ORDER BY t.n
            """,
            *columns,
        )
    )


async def insert_transfer(
    conn: Conn,
    *,
    user_id: str,
    kind: str,
    debit: str,
    credit: str,
    amount: int,
    request_id: str,
    reason_code: str = "",
    metadata: Mapping[str, str] | None = None,
    related_transfer_id: int | None = None,
    hold_id: int | None = None,
) -> Record:
    row = await conn.fetchrow(
        """
        INSERT INTO transfers (user_id, kind, debit_account, credit_account, amount, request_id,
                               reason_code, metadata, related_transfer_id, hold_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)
        RETURNING *
        """,
        user_id,
        kind,
        debit,
        credit,
        amount,
        request_id,
        reason_code,
        json.dumps(dict(metadata or {})),
        related_transfer_id,
        hold_id,
    )
    assert row is not None
    return row


async def insert_lot(
    conn: Conn,
    user_id: str,
    transfer_id: int,
    source: str,
    amount: int,
    expires_at: datetime,
    matures_at: datetime | None,
) -> int:
    lot_id: int = await conn.fetchval(
        """
        INSERT INTO lots (user_id, transfer_id, source, granted, remaining, expires_at, matures_at)
        VALUES ($1, $2, $3, $4, $4, $5, $6) RETURNING lot_id
        """,
        user_id,
        transfer_id,
        source,
        amount,
        expires_at,
        matures_at,
    )
    return lot_id


async def adjust_member(conn: Conn, user_id: str, **deltas: int) -> None:
    """Add deltas to the member's totals (balance, held, earned, spent, expired, reversed)."""
    columns = sorted(deltas)
    assignments = ", ".join(f"{c} = {c} + ${i + 2}" for i, c in enumerate(columns))
    await conn.execute(
        f"UPDATE members SET {assignments}, updated_at = now() WHERE user_id = $1",
        user_id,
        *(deltas[c] for c in columns),
    )


@dataclass(frozen=True)
class Spent:
    transfer: Record | None  # None: not enough spendable points, nothing changed
    taken: list[Taken]
    available: int  # spendable points before this spend


async def spend(
    conn: Conn,
    *,
    user_id: str,
    amount: int,
    kind: str,
    credit: str,
    request_id: str,
    reason_code: str,
    metadata: Mapping[str, str],
    hold_id: int | None = None,
) -> Spent:
    """Move `amount` out of the member's spendable lots, soonest expiry first, in one statement:
    the transfer, each lot's allocation, and the member's totals (spent, or held for a hold).

    Spendable means matured and unexpired, judged by database time. The caller holds the
    member lock.
    """
    row = await conn.fetchrow(
        """
        WITH open AS (
            SELECT lot_id, remaining, expires_at,
                   (sum(remaining) OVER (ORDER BY expires_at, lot_id))::bigint - remaining
                       AS before
            FROM lots
            WHERE user_id = $1 AND remaining > 0 AND expires_at > now()
              AND (matures_at IS NULL OR matures_at <= now())
        ), available AS (
            SELECT coalesce(sum(remaining), 0)::bigint AS points FROM open
        ), made AS (
            INSERT INTO transfers (user_id, kind, debit_account, credit_account, amount,
                                   request_id, reason_code, metadata, hold_id)
            SELECT $1, $3, 'member', $4, $2, $5, $6, $7::jsonb, $8
            FROM available WHERE points >= $2
            RETURNING *
        ), chosen AS (
            SELECT o.lot_id, o.expires_at, least(o.remaining, $2 - o.before) AS take,
                   m.transfer_id
            FROM open o CROSS JOIN made m WHERE o.before < $2
        ), updated AS (
            UPDATE lots l SET remaining = l.remaining - c.take, allocated = l.allocated + c.take
            FROM chosen c WHERE l.user_id = $1 AND l.lot_id = c.lot_id
        ), recorded AS (
            INSERT INTO allocations (user_id, origin_transfer_id, transfer_id, lot_id, amount)
            SELECT $1, transfer_id, transfer_id, lot_id, take FROM chosen
        ), member AS (
            UPDATE members SET balance = balance - $2,
                               spent = spent + CASE WHEN $8::bigint IS NULL THEN $2 ELSE 0 END,
                               held = held + CASE WHEN $8::bigint IS NULL THEN 0 ELSE $2 END,
                               updated_at = now()
            WHERE user_id = $1 AND EXISTS (SELECT 1 FROM made)
        )
        SELECT made.*, a.points AS available,
               (SELECT array_agg(lot_id ORDER BY expires_at, lot_id) FROM chosen) AS lot_ids,
               (SELECT array_agg(take ORDER BY expires_at, lot_id) FROM chosen) AS takes,
               (SELECT array_agg(expires_at ORDER BY expires_at, lot_id) FROM chosen) AS expiries
        FROM available a LEFT JOIN made ON true
        """,
        user_id,
        amount,
        kind,
        credit,
        request_id,
        reason_code,
        json.dumps(dict(metadata)),
        hold_id,
    )
    assert row is not None
    return _spent(row, user_id, amount)


def _spent(row: Record, user_id: str, amount: int) -> Spent:
    if row["transfer_id"] is None:
        return Spent(None, [], row["available"])
    taken = [
        Taken(lot, take, expires)
        for lot, take, expires in zip(row["lot_ids"], row["takes"], row["expiries"], strict=True)
    ]
    if sum(t.amount for t in taken) != amount:
        raise RuntimeError(f"lot allocation for {user_id} does not add up to {amount}")
    return Spent(row, taken, row["available"])


async def give_back(
    conn: Conn,
    user_id: str,
    amount: int,
    origin: int,
    transfer_id: int,
    now: datetime,
    grace_until: datetime,
) -> list[Taken]:
    """Return `amount` of what `origin` took, to the lots it came from (latest expiry first).

    Points whose lot has expired by `now` (the transaction's time) are re-issued into a new lot
    expiring at `grace_until` (the old lot gets them back and passes them on, so every lot
    still adds up).
    """
    rows = await conn.fetch(
        """
        SELECT a.lot_id, sum(a.amount)::bigint AS net, l.expires_at, l.source
        FROM allocations a JOIN lots l ON l.user_id = a.user_id AND l.lot_id = a.lot_id
        WHERE a.user_id = $1 AND a.origin_transfer_id = $2
        GROUP BY a.lot_id, l.expires_at, l.source
        HAVING sum(a.amount) > 0
        ORDER BY l.expires_at DESC, a.lot_id DESC
        """,
        user_id,
        origin,
    )
    left = amount
    returned: list[Taken] = []
    for row in rows:
        if left == 0:
            break
        part = min(left, row["net"])
        left -= part
        await _move(conn, user_id, row["lot_id"], -part, origin, transfer_id)
        if row["expires_at"] > now:
            returned.append(Taken(row["lot_id"], part, row["expires_at"]))
            continue
        # Already expired: move the points on into a fresh lot with a grace expiry.
        new_lot = await insert_lot(
            conn, user_id, transfer_id, row["source"], part, grace_until, None
        )
        await _move(conn, user_id, row["lot_id"], part, transfer_id, transfer_id)
        returned.append(Taken(new_lot, part, grace_until))
    if left != 0:
        raise RuntimeError(f"cannot give back {amount} of transfer {origin}: only {amount - left}")
    return returned


async def _move(
    conn: Conn, user_id: str, lot_id: int, amount: int, origin: int, transfer_id: int
) -> None:
    """Allocate `amount` of a lot to `transfer_id` (negative: give it back to the lot), on
    behalf of `origin`'s allocations."""
    await conn.execute(
        """
        WITH moved AS (
            UPDATE lots SET remaining = remaining - $3, allocated = allocated + $3
            WHERE user_id = $1 AND lot_id = $2
        )
        INSERT INTO allocations (user_id, origin_transfer_id, transfer_id, lot_id, amount)
        VALUES ($1, $4, $5, $2, $3::bigint)
        """,
        user_id,
        lot_id,
        amount,
        origin,
        transfer_id,
    )


async def net_taken(conn: Conn, user_id: str, origin: int) -> int:
    """Points `origin` (a spend or hold) still has out of lots, net of returns."""
    total: int = await conn.fetchval(
        "SELECT coalesce(sum(amount), 0)::bigint FROM allocations "
        "WHERE user_id = $1 AND origin_transfer_id = $2",
        user_id,
        origin,
    )
    return total


async def take_from_lot(
    conn: Conn, user_id: str, lot_id: int, amount: int, transfer_id: int
) -> None:
    """Take points back out of one lot (an earn reversal), recording the allocation."""
    await _move(conn, user_id, lot_id, amount, transfer_id, transfer_id)


async def get_transfer(conn: Conn, user_id: str, transfer_id: int) -> Record | None:
    return await conn.fetchrow(
        "SELECT * FROM transfers WHERE user_id = $1 AND transfer_id = $2", user_id, transfer_id
    )


async def lot_of(conn: Conn, user_id: str, transfer_id: int) -> Record | None:
    return await conn.fetchrow(
        "SELECT * FROM lots WHERE user_id = $1 AND transfer_id = $2 ORDER BY lot_id LIMIT 1",
        user_id,
        transfer_id,
    )


async def reversed_so_far(conn: Conn, user_id: str, transfer_id: int) -> int:
    total: int = await conn.fetchval(
        "SELECT coalesce(sum(amount), 0)::bigint FROM transfers "
        "WHERE user_id = $1 AND related_transfer_id = $2 AND kind = 'REVERSAL'",
        user_id,
        transfer_id,
    )
    return total


async def notify_balance(conn: Conn, user_id: str) -> None:
    """Tell balance watchers (see watch.py) when this transaction commits."""
    await conn.execute("SELECT pg_notify('ledger_balance', $1)", user_id)


async def balances(
    conn: Conn, user_ids: Sequence[str], expiring_days: int, zone: str
) -> tuple[dict[str, Record], dict[str, list[tuple[str, int]]]]:
    """Balances as of database time, plus points expiring within `expiring_days` by date,
    in one statement.

    Read-time rules: pending lots count once matured, expired-but-unswept lots count as gone,
    and active holds past their deadline count as released.
    """
    rows = await conn.fetch(
        """
        SELECT u.user_id, now() AS as_of,
               coalesce(m.earned, 0) AS earned, coalesce(m.spent, 0) AS spent,
               coalesce(m.expired, 0) AS expired, coalesce(m.reversed, 0) AS reversed,
               m.updated_at AS changed_at,
               coalesce(l.available, 0) AS lots_available, coalesce(l.pending, 0) AS pending,
               coalesce(h.active, 0) AS held, coalesce(h.overdue, 0) AS overdue,
               e.days, e.amounts
        FROM unnest($1::text[]) AS u(user_id)
        LEFT JOIN members m ON m.user_id = u.user_id
        LEFT JOIN LATERAL (
            SELECT (sum(remaining) FILTER (WHERE matures_at IS NULL OR matures_at <= now()))
                       ::bigint AS available,
                   (sum(remaining) FILTER (WHERE matures_at > now()))::bigint AS pending
            FROM lots WHERE user_id = u.user_id AND remaining > 0 AND expires_at > now()
        ) l ON true
        LEFT JOIN LATERAL (
            SELECT (sum(amount) FILTER (WHERE deadline_at > now()))::bigint AS active,
                   (sum(amount) FILTER (WHERE deadline_at <= now()))::bigint AS overdue
            FROM holds WHERE user_id = u.user_id AND status = 'ACTIVE'
        ) h ON true
        LEFT JOIN LATERAL (
            SELECT array_agg(day ORDER BY day) AS days, array_agg(amount ORDER BY day) AS amounts
            FROM (
                SELECT to_char(expires_at AT TIME ZONE $3, 'YYYY-MM-DD') AS day,
                       sum(remaining)::bigint AS amount
                FROM lots
                WHERE $2 > 0 AND user_id = u.user_id AND remaining > 0
                  AND expires_at > now() AND expires_at <= now() + make_interval(days => $2)
                GROUP BY 1
            ) per_day
        ) e ON true
        """,
        list(user_ids),
        expiring_days,
        zone,
    )
    expiring = {
        r["user_id"]: list(zip(r["days"] or (), r["amounts"] or (), strict=True)) for r in rows
    }
    return {r["user_id"]: r for r in rows}, expiring
