"""Read-side queries: history, segmentation, statistics and the invariant audit."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.common.db import Conn

MAX_VIOLATIONS = 1000


async def list_transfers(
    conn: Conn,
    user_id: str,
    fetch: int,
    before_id: int | None,
    kinds: Sequence[str],
    start: datetime | None,
    end: datetime | None,
) -> list[asyncpg.Record]:
    """Up to `fetch` transfers, newest first, each credit with the expiry and maturity of the
    lot it created."""
    return list(
        await conn.fetch(
            """
        SELECT t.*, lot.expires_at AS lot_expires_at, lot.matures_at AS lot_matures_at
        FROM transfers t
        LEFT JOIN LATERAL (
            SELECT expires_at, matures_at FROM lots l
            WHERE l.user_id = t.user_id AND l.transfer_id = t.transfer_id
            ORDER BY l.lot_id LIMIT 1
        ) lot ON true
        WHERE t.user_id = $1
          AND ($2::bigint IS NULL OR t.transfer_id < $2)
          AND (cardinality($3::text[]) = 0 OR t.kind = ANY($3::text[]))
          AND ($4::timestamptz IS NULL OR t.created_at >= $4)
          AND ($5::timestamptz IS NULL OR t.created_at < $5)
        ORDER BY t.transfer_id DESC
        LIMIT $6
        """,
            user_id,
            before_id,
            list(kinds),
            start,
            end,
            fetch,
        )
    )


async def spenders(
    conn: Conn, user_ids: list[str], since: list[datetime], end: datetime | None
) -> set[str]:
    """The members who spent (a spend or a captured hold) in [their since, end)."""
    rows = await conn.fetch(
        """
        SELECT k.user_id FROM unnest($1::text[], $2::timestamptz[]) AS k(user_id, since)
        WHERE EXISTS (
            SELECT 1 FROM transfers t
            WHERE t.user_id = k.user_id AND t.kind IN ('SPEND', 'CAPTURE')
              AND t.created_at >= k.since
              AND t.created_at < coalesce($3::timestamptz, 'infinity')
        )
        """,
        user_ids,
        since,
        end,
    )
    return {r["user_id"] for r in rows}


@dataclass(frozen=True)
class Segment:
    min_available: int = 0
    prefix: str = ""
    changed_before: datetime | None = None


async def members_at_least(
    conn: Conn, segment: Segment, after: str, limit: int
) -> tuple[list[str], str | None]:
    """Members of `segment` (available >= its minimum, an id prefix, points last moved before a
    time), by user id, and where the next page starts.

    The stored balance bounds available from above (it also counts pending and unswept
    expired points), so a positive threshold narrows the scan through the index of members
    with a balance (`balance > 0` spelled out, so the planner can use that partial index);
    the exact check follows. A threshold of 0 lists every member, those at 0 included. A
    prefix starts the scan at the prefix.
    """
    narrowed = "balance >= $1 AND balance > 0" if segment.min_available > 0 else "$1::bigint = 0"
    rows = await conn.fetch(
        f"""
        WITH candidates AS (
            SELECT user_id FROM members
            WHERE {narrowed} AND user_id > $2 AND user_id >= $4 AND starts_with(user_id, $4)
              AND updated_at < coalesce($5::timestamptz, 'infinity')
            ORDER BY user_id LIMIT $3
        )
        SELECT c.user_id,
               coalesce((SELECT sum(remaining) FROM lots l
                         WHERE l.user_id = c.user_id AND l.remaining > 0
                           AND l.expires_at > now()
                           AND (l.matures_at IS NULL OR l.matures_at <= now())), 0)
               + coalesce((SELECT sum(amount) FROM holds h
                           WHERE h.user_id = c.user_id AND h.status = 'ACTIVE'
                             AND h.deadline_at <= now()), 0) AS available
        FROM candidates c ORDER BY c.user_id
        """,
        segment.min_available,
        after,
        limit,
        segment.prefix,
        segment.changed_before,
    )
    matching = [r["user_id"] for r in rows if r["available"] >= segment.min_available]
    next_after = rows[-1]["user_id"] if len(rows) == limit else None
    return matching, next_after


# The period's flows, as columns of a SELECT over transfers (see GetStatsResponse).
_FLOWS = """
    coalesce(sum(amount) FILTER (WHERE credit_account = 'member'
                                 AND kind IN ('EARN', 'ADJUSTMENT')), 0)::bigint AS issued,
    (coalesce(sum(amount) FILTER (WHERE kind IN ('SPEND', 'CAPTURE')
                                  OR (kind = 'ADJUSTMENT' AND debit_account = 'member')), 0)
     - coalesce(sum(amount) FILTER (WHERE kind = 'REVERSAL' AND credit_account = 'member'),
                0))::bigint AS spent,
    coalesce(sum(amount) FILTER (WHERE kind = 'EXPIRY'), 0)::bigint AS expired,
    coalesce(sum(amount) FILTER (WHERE kind = 'REVERSAL' AND debit_account = 'member'),
             0)::bigint AS reversed
"""
# Open ends as infinities rather than "$1 IS NULL OR ...": the services keep generic plans,
# and a generic plan can only use the index on created_at with a plain range.
_PERIOD = """
    created_at >= coalesce($1::timestamptz, '-infinity')
    AND created_at < coalesce($2::timestamptz, 'infinity')
"""


async def stats(
    conn: Conn, start: datetime | None, end: datetime | None
) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
    totals = await conn.fetchrow(
        f"""
        SELECT
          -- What members hold, less what is due to expire and only awaits the sweep.
          ((SELECT coalesce(sum(balance + held), 0) FROM members)
           - (SELECT coalesce(sum(remaining), 0) FROM lots
              WHERE remaining > 0 AND expires_at <= now()))::bigint AS liability,
          {_FLOWS}
        FROM transfers WHERE {_PERIOD}
        """,
        start,
        end,
    )
    assert totals is not None
    by_source = await conn.fetch(
        f"""
        SELECT substr(acct, 10) AS source,
               coalesce(sum(amount) FILTER (WHERE kind = 'EARN'), 0)::bigint AS issued,
               coalesce(sum(amount) FILTER (WHERE kind = 'REVERSAL'), 0)::bigint AS reversed
        FROM (
            SELECT CASE WHEN kind = 'EARN' THEN debit_account ELSE credit_account END AS acct,
                   kind, amount, created_at
            FROM transfers
            WHERE kind = 'EARN' OR (kind = 'REVERSAL' AND credit_account LIKE 'issuance:%')
        ) t
        WHERE {_PERIOD}
        GROUP BY 1 ORDER BY 1
        """,
        start,
        end,
    )
    return totals, list(by_source)


async def last_expiry_run(conn: Conn) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM expiry_runs ORDER BY run_id DESC LIMIT 1")


async def daily_flows(
    conn: Conn, start: datetime, end: datetime | None, zone: str
) -> list[asyncpg.Record]:
    """The flows per day (`day` a date in `zone`), oldest first; quiet days left out."""
    return list(
        await conn.fetch(
            f"""
            SELECT (created_at AT TIME ZONE $3)::date AS day, {_FLOWS}
            FROM transfers WHERE {_PERIOD}
            GROUP BY 1 ORDER BY 1
            """,
            start,
            end,
            zone,
        )
    )


_AUDIT = """
WITH postings AS (
    SELECT user_id,
           sum(CASE WHEN credit_account = 'member' THEN amount
                    WHEN debit_account = 'member' THEN -amount ELSE 0 END) AS member_sum,
           sum(CASE WHEN credit_account = 'holds' THEN amount
                    WHEN debit_account = 'holds' THEN -amount ELSE 0 END) AS holds_sum
    FROM transfers GROUP BY user_id
), lot_sums AS (
    SELECT user_id, sum(remaining) AS remaining FROM lots GROUP BY user_id
), hold_sums AS (
    SELECT user_id, sum(amount) AS active FROM holds WHERE status = 'ACTIVE' GROUP BY user_id
)
SELECT 'NEGATIVE_BALANCE' AS invariant, m.user_id,
       format('balance %s, held %s', m.balance, m.held) AS detail
FROM members m WHERE m.balance < 0 OR m.held < 0
UNION ALL
SELECT 'BALANCE_MISMATCH', m.user_id,
       format('balance %s but postings sum to %s', m.balance, coalesce(p.member_sum, 0))
FROM members m LEFT JOIN postings p USING (user_id)
WHERE m.balance <> coalesce(p.member_sum, 0)
UNION ALL
SELECT 'HELD_MISMATCH', m.user_id,
       format('held %s, hold postings %s, active holds %s', m.held, coalesce(p.holds_sum, 0),
              coalesce(h.active, 0))
FROM members m LEFT JOIN postings p USING (user_id) LEFT JOIN hold_sums h USING (user_id)
WHERE m.held <> coalesce(p.holds_sum, 0) OR m.held <> coalesce(h.active, 0)
UNION ALL
SELECT 'LOTS_MISMATCH', m.user_id,
       format('balance %s but lots hold %s', m.balance, coalesce(s.remaining, 0))
FROM members m LEFT JOIN lot_sums s USING (user_id)
WHERE m.balance <> coalesce(s.remaining, 0)
UNION ALL
SELECT 'LOT_ARITHMETIC', l.user_id,
       format('lot %s: granted %s <> allocated %s + expired %s + remaining %s',
              l.lot_id, l.granted, l.allocated, l.expired, l.remaining)
FROM lots l WHERE l.granted <> l.allocated + l.expired + l.remaining OR l.remaining < 0
UNION ALL
SELECT 'ALLOCATIONS_MISMATCH', l.user_id,
       format('lot %s: allocated %s but allocations sum to %s', l.lot_id, l.allocated,
              coalesce(a.total, 0))
FROM lots l LEFT JOIN (
    SELECT user_id, lot_id, sum(amount) AS total FROM allocations GROUP BY user_id, lot_id
) a USING (user_id, lot_id)
WHERE l.allocated <> coalesce(a.total, 0)
LIMIT $1
"""


async def audit(conn: Conn) -> tuple[list[asyncpg.Record], int, int]:
    """Every invariant violation (up to MAX_VIOLATIONS), members and lots checked.

    Each transfer is one debit and one credit of the same positive amount (the schema
    enforces amount > 0), so postings sum to zero by construction; the checks above tie
    every stored total back to the postings and lots.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        violations = list(await conn.fetch(_AUDIT, MAX_VIOLATIONS))
        members = await conn.fetchval("SELECT count(*) FROM members")
        lots = await conn.fetchval("SELECT count(*) FROM lots")
    return violations, members, lots


# What `points export` streams, for finance: each table's columns in a stable order, rows in
# time order within [$1, $2) (members by when they joined).
EXPORTS = {
    "transfers": """
        SELECT transfer_id, user_id, kind, debit_account, credit_account, amount, reason_code,
               request_id, related_transfer_id, hold_id, metadata::text AS metadata, created_at
        FROM transfers WHERE {period} ORDER BY created_at, transfer_id
    """,
    "members": """
        SELECT user_id, balance, held, earned, spent, expired, reversed, created_at, updated_at
        FROM members WHERE {period} ORDER BY created_at, user_id
    """,
    "lots": """
        SELECT lot_id, user_id, transfer_id, source, granted, remaining, allocated, expired,
               expires_at, matures_at, created_at
        FROM lots WHERE {period} ORDER BY created_at, lot_id
    """,
}


def export_rows(
    conn: Conn, table: str, start: datetime | None, end: datetime | None
) -> asyncpg.cursor.CursorFactory[asyncpg.Record]:
    """A server-side cursor over `table` (see EXPORTS): iterate it inside a transaction, and
    memory stays constant however many rows there are."""
    return conn.cursor(EXPORTS[table].format(period=_PERIOD), start, end, prefetch=2000)


async def copy_csv(
    conn: Conn,
    table: str,
    start: datetime | None,
    end: datetime | None,
    write: Callable[[bytes], Coroutine[Any, Any, None]],
) -> int:
    """`table` (see EXPORTS) as CSV with a header, formatted by PostgreSQL and streamed in
    chunks to `write` (COPY: about ten times the rows per second of formatting in Python).
    Returns the number of rows."""
    status = await conn.copy_from_query(
        EXPORTS[table].format(period=_PERIOD), start, end, output=write, format="csv", header=True
    )
    return int(status.split()[-1])


async def gauges(conn: Conn) -> asyncpg.Record:
    """What the ledger's sampled gauges report (see `measures.py`)."""
    row = await conn.fetchrow(
        """
        SELECT
          ((SELECT coalesce(sum(balance + held), 0) FROM members)
           - (SELECT coalesce(sum(remaining), 0) FROM lots
              WHERE remaining > 0 AND expires_at <= now()))::bigint AS liability,
          (SELECT count(*) FROM holds WHERE status = 'ACTIVE' AND deadline_at <= now())
              AS overdue_holds,
          (SELECT count(*) FROM lots WHERE remaining > 0 AND expires_at <= now()) AS due_lots
        """
    )
    assert row is not None
    return row
