"""Budget use per period, spent under the budgets' limits.
Functions run inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from services.common.db import Conn


async def lock_budget_usage(conn: Conn, keys: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Lock (budget_id, period_key) usage rows in id order, creating missing ones; return used
    points by budget id. One statement: the upsert locks each row and returns its latest use."""
    if not keys:
        return {}
    ordered = sorted(set(keys))
    rows = await conn.fetch(
        """
        INSERT INTO budget_usage AS u (budget_id, period_key)
        SELECT * FROM unnest($1::text[], $2::text[]) AS k(budget_id, period_key)
        ORDER BY k.budget_id, k.period_key
        ON CONFLICT (budget_id, period_key) DO UPDATE SET used = u.used
        RETURNING u.budget_id, u.used
        """,
        [k[0] for k in ordered],
        [k[1] for k in ordered],
    )
    return {r["budget_id"]: r["used"] for r in rows}


async def spend_within_limits(
    conn: Conn, spent: Sequence[tuple[str, str, int, int]]
) -> dict[str, int] | None:
    """Add (budget_id, period_key, points) to each budget's use only where the use stays within
    its limit (the fourth field), creating missing rows; each budget's use after, or None when
    a budget could not take its share (a concurrent event got there first: nothing is kept
    once the caller rolls back and starts over under `lock_budget_usage`). Each row is locked
    only from here to commit."""
    rows = await conn.fetch(
        """
        WITH wanted AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
                AS w(budget_id, period_key, points, points_limit)
        ), created AS (
            INSERT INTO budget_usage (budget_id, period_key, used)
            SELECT budget_id, period_key, points FROM wanted WHERE points <= points_limit
            ORDER BY budget_id, period_key
            ON CONFLICT DO NOTHING
            RETURNING budget_id, period_key, used
        ), added AS (
            UPDATE budget_usage u SET used = u.used + w.points
            FROM wanted w
            WHERE u.budget_id = w.budget_id AND u.period_key = w.period_key
              AND u.used + w.points <= w.points_limit
              AND (w.budget_id, w.period_key) NOT IN (SELECT budget_id, period_key FROM created)
            RETURNING u.budget_id, u.used
        )
        SELECT budget_id, used FROM created UNION ALL SELECT budget_id, used FROM added
        """,
        [s[0] for s in spent],
        [s[1] for s in spent],
        [s[2] for s in spent],
        [s[3] for s in spent],
    )
    return {r["budget_id"]: r["used"] for r in rows} if len(rows) == len(spent) else None


async def spend_budgets(conn: Conn, spent: Sequence[tuple[str, str, int]]) -> dict[str, int]:
    """Add to rows locked by `lock_budget_usage`; each budget's use after."""
    rows = await conn.fetch(
        """
        UPDATE budget_usage u SET used = u.used + s.points
        FROM unnest($1::text[], $2::text[], $3::bigint[]) AS s(budget_id, period_key, points)
        WHERE u.budget_id = s.budget_id AND u.period_key = s.period_key
        RETURNING u.budget_id, u.used
        """,
        [s[0] for s in spent],
        [s[1] for s in spent],
        [s[2] for s in spent],
    )
    return {r["budget_id"]: r["used"] for r in rows}


async def budget_usage(conn: Conn, keys: Sequence[tuple[str, str]]) -> dict[str, int]:
    rows = await conn.fetch(
        """
        SELECT u.budget_id, u.used FROM budget_usage u
        JOIN unnest($1::text[], $2::text[]) AS k(budget_id, period_key)
          ON u.budget_id = k.budget_id AND u.period_key = k.period_key
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {r["budget_id"]: r["used"] for r in rows}
