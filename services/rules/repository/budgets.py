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


# Adds (budget_id, period_key, points) from $1..$3 to each budget's use, only where the use
# stays within its limit ($4; NULL for rows locked by `lock_budget_usage`, which have no race
# to lose), creating missing rows. CTEs `created` and `added` give each spent budget's use
# after; a budget in neither could not take its share. Other statements extend it with more
# CTEs (repository/events.py `write_effects`).
SPEND_WITHIN_LIMITS = """
        WITH wanted AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
                AS w(budget_id, period_key, points, points_limit)
        ), created AS (
            INSERT INTO budget_usage (budget_id, period_key, used)
            SELECT budget_id, period_key, points FROM wanted
            WHERE points <= coalesce(points_limit, points)
            ORDER BY budget_id, period_key
            ON CONFLICT DO NOTHING
            RETURNING budget_id, period_key, used
        ), added AS (
            UPDATE budget_usage u SET used = u.used + w.points
            FROM wanted w
            WHERE u.budget_id = w.budget_id AND u.period_key = w.period_key
              AND u.used + w.points <= coalesce(w.points_limit, u.used + w.points)
              AND (w.budget_id, w.period_key) NOT IN (SELECT budget_id, period_key FROM created)
            RETURNING u.budget_id, u.used
        )
"""


def spend_columns(
    spent: Sequence[tuple[str, str, int, int | None]],
) -> tuple[list[str], list[str], list[int], list[int | None]]:
    return (
        [s[0] for s in spent],
        [s[1] for s in spent],
        [s[2] for s in spent],
        [s[3] for s in spent],
    )


async def spend_within_limits(
    conn: Conn, spent: Sequence[tuple[str, str, int, int | None]]
) -> dict[str, int] | None:
    """Add (budget_id, period_key, points) to each budget's use only where the use stays within
    its limit (the fourth field), creating missing rows; each budget's use after, or None when
    a budget could not take its share (a concurrent event got there first: nothing is kept
    once the caller rolls back and starts over under `lock_budget_usage`). Each row is locked
    only from here to commit."""
    rows = await conn.fetch(
        SPEND_WITHIN_LIMITS
        + "SELECT budget_id, used FROM created UNION ALL SELECT budget_id, used FROM added",
        *spend_columns(spent),
    )
    return {r["budget_id"]: r["used"] for r in rows} if len(rows) == len(spent) else None


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
