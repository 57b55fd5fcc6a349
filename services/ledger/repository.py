"""SQL of the ledger. Every function runs on a connection inside the caller's transaction.

Locking order is always member row first, then that member's lots and holds, which keeps
concurrent writers (RPCs, the hold sweeper, expiry runs) free of deadlocks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from google.protobuf.message import Message

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


RequestKey = tuple[str, str]  # (user_id, request_id)


async def find_request(conn: Conn, user_id: str, request_id: str) -> Record | None:
    return await conn.fetchrow(
        "SELECT request_id, method, payload_sha256, response, error FROM requests "
        "WHERE user_id = $1 AND request_id = $2",
        user_id,
        request_id,
    )


async def claim_requests(
    conn: Conn, claims: Sequence[tuple[str, str, str, bytes]]
) -> set[RequestKey]:
    """Claim (user_id, request_id, method, payload_sha256) rows; return the keys that were new.

    A key claimed by a transaction still in flight makes this wait for it, so a concurrent
    duplicate sees the committed outcome afterwards.
    """
    rows = await conn.fetch(
        """
        INSERT INTO requests (user_id, request_id, method, payload_sha256)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
        ON CONFLICT (user_id, request_id) DO NOTHING
        RETURNING user_id, request_id
        """,
        [c[0] for c in claims],
        [c[1] for c in claims],
        [c[2] for c in claims],
        [c[3] for c in claims],
    )
    return {(r["user_id"], r["request_id"]) for r in rows}


async def find_requests(conn: Conn, keys: Sequence[RequestKey]) -> dict[RequestKey, Record]:
    rows = await conn.fetch(
        """
        SELECT r.user_id, r.request_id, r.method, r.payload_sha256, r.response, r.error
        FROM unnest($1::text[], $2::text[]) AS k(user_id, request_id)
        JOIN requests r USING (user_id, request_id)
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["user_id"], r["request_id"]): r for r in rows}


async def finish_requests(
    conn: Conn,
    outcomes: Sequence[tuple[str, str, bytes | None, str | None]],
    changed_users: Sequence[str],
) -> None:
    """Store each claimed request's outcome (response or JSON error); tell watchers on commit."""
    await conn.execute(
        """
        WITH outcome AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::jsonb[])
                AS o(user_id, request_id, response, error)
        ), stored AS (
            UPDATE requests r SET response = o.response, error = o.error
            FROM outcome o WHERE r.user_id = o.user_id AND r.request_id = o.request_id
        )
        SELECT count(pg_notify('ledger_balance', u)) FROM unnest($5::text[]) AS u
        """,
        [o[0] for o in outcomes],
        [o[1] for o in outcomes],
        [o[2] for o in outcomes],
        [o[3] for o in outcomes],
        list(changed_users),
    )


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


async def record_response(
    conn: Conn,
    user_id: str,
    request_id: str,
    method: str,
    payload_sha256: bytes,
    response: Message,
) -> None:
    """Record a request that ran outside a batch (an expiry run) with its response."""
    await conn.execute(
        """
        INSERT INTO requests (user_id, request_id, method, payload_sha256, response)
        VALUES ($1, $2, $3, $4, $5)
        """,
        user_id,
        request_id,
        method,
        payload_sha256,
        response.SerializeToString(),
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
        await conn.execute(
            """
            WITH back AS (
                UPDATE lots SET remaining = remaining + $3, allocated = allocated - $3
                WHERE user_id = $1 AND lot_id = $2
            )
            INSERT INTO allocations (user_id, origin_transfer_id, transfer_id, lot_id, amount)
            VALUES ($1, $4, $5, $2, -$3::bigint)
            """,
            user_id,
            row["lot_id"],
            part,
            origin,
            transfer_id,
        )
        if row["expires_at"] > now:
            returned.append(Taken(row["lot_id"], part, row["expires_at"]))
            continue
        # Already expired: move the points on into a fresh lot with a grace expiry.
        new_lot = await insert_lot(
            conn, user_id, transfer_id, row["source"], part, grace_until, None
        )
        await conn.execute(
            """
            WITH moved AS (
                UPDATE lots SET remaining = remaining - $3, allocated = allocated + $3
                WHERE user_id = $1 AND lot_id = $2
            )
            INSERT INTO allocations (user_id, origin_transfer_id, transfer_id, lot_id, amount)
            VALUES ($1, $4, $4, $2, $3::bigint)
            """,
            user_id,
            row["lot_id"],
            part,
            transfer_id,
        )
        returned.append(Taken(new_lot, part, grace_until))
    if left != 0:
        raise RuntimeError(f"cannot give back {amount} of transfer {origin}: only {amount - left}")
    return returned


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
    await conn.execute(
        """
        WITH taken AS (
            UPDATE lots SET remaining = remaining - $3, allocated = allocated + $3
            WHERE user_id = $1 AND lot_id = $2
        )
        INSERT INTO allocations (user_id, origin_transfer_id, transfer_id, lot_id, amount)
        VALUES ($1, $4, $4, $2, $3::bigint)
        """,
        user_id,
        lot_id,
        amount,
        transfer_id,
    )


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


async def due_holds(conn: Conn, limit: int) -> list[Record]:
    return await conn.fetch(
        "SELECT user_id, hold_id FROM holds WHERE status = 'ACTIVE' AND deadline_at <= now() "
        "ORDER BY deadline_at LIMIT $1",
        limit,
    )


async def any_lot_due(conn: Conn, as_of: datetime) -> bool:
    due: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM lots WHERE remaining > 0 AND expires_at <= $1)", as_of
    )
    return due


async def notify_balance(conn: Conn, user_id: str) -> None:
    """Tell balance watchers (see watch.py) when this transaction commits."""
    await conn.execute("SELECT pg_notify('ledger_balance', $1)", user_id)


async def get_hold(conn: Conn, user_id: str, hold_id: int) -> Record | None:
    return await conn.fetchrow(
        "SELECT *, deadline_at <= now() AS overdue FROM holds WHERE user_id = $1 AND hold_id = $2",
        user_id,
        hold_id,
    )


async def next_hold_id(conn: Conn) -> int:
    """Reserve a hold id first, so the HOLD transfer can name its hold when inserted."""
    hold_id: int = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('holds', 'hold_id'))")
    return hold_id


async def insert_hold(
    conn: Conn,
    user_id: str,
    hold_id: int,
    transfer_id: int,
    amount: int,
    deadline: datetime,
) -> Record:
    row = await conn.fetchrow(
        """
        INSERT INTO holds (user_id, hold_id, hold_transfer_id, amount, deadline_at)
        VALUES ($1, $2, $3, $4, $5) RETURNING *, false AS overdue
        """,
        user_id,
        hold_id,
        transfer_id,
        amount,
        deadline,
    )
    assert row is not None
    return row


async def resolve_hold(
    conn: Conn, user_id: str, hold_id: int, status: str, captured: int, released: int
) -> Record:
    row = await conn.fetchrow(
        """
        UPDATE holds SET status = $3, captured = $4, released = $5, resolved_at = now()
        WHERE user_id = $1 AND hold_id = $2 AND status = 'ACTIVE'
        RETURNING *, false AS overdue
        """,
        user_id,
        hold_id,
        status,
        captured,
        released,
    )
    assert row is not None, "hold must be active and locked through its member"
    return row


async def overdue_holds(conn: Conn, user_id: str) -> list[Record]:
    return list(
        await conn.fetch(
            "SELECT * FROM holds WHERE user_id = $1 AND status = 'ACTIVE' AND deadline_at <= now()",
            user_id,
        )
    )


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
