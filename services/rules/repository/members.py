"""A member's row in rules: the per-member lock, tiers, referrals.
Functions run inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from asyncpg import Record

from services.common.db import Conn
from services.rules.repository.awards import CREDITED


async def lock_user(conn: Conn, user_id: str) -> tuple[datetime, int]:
    """Create the user if new and lock it for this transaction; return database time and the
    configuration generation (see program.py)."""
    row = await conn.fetchrow(
        """
        WITH locked AS (
            INSERT INTO users AS u (user_id) VALUES ($1)
            ON CONFLICT (user_id) DO UPDATE SET created_at = u.created_at
            RETURNING 1
        )
        SELECT now(), (SELECT generation FROM config_generation) FROM locked
        """,
        user_id,
    )
    assert row is not None
    return row[0], row[1]


async def clock(conn: Conn) -> tuple[datetime, int]:
    """Database time and the configuration generation, for reads that lock no user."""
    row = await conn.fetchrow("SELECT now(), (SELECT generation FROM config_generation)")
    assert row is not None
    return row[0], row[1]


async def user_since(conn: Conn, user_id: str) -> datetime:
    since: datetime = await conn.fetchval(
        "SELECT created_at FROM users WHERE user_id = $1", user_id
    )
    return since


async def referrer_of(conn: Conn, user_id: str) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT referrer_id FROM referrals WHERE user_id = $1", user_id
    )
    return found


async def record_referral(conn: Conn, user_id: str, referrer_id: str, event_id: str) -> str:
    """RECORDED, ALREADY_REFERRED, SELF_INVITE or INVITE_LOOP (the referrer descends from
    the invitee, so the invitation would close a loop)."""
    if referrer_id == user_id:
        return "SELF_INVITE"
    if await referrer_of(conn, user_id) is not None:
        return "ALREADY_REFERRED"  # the first invitation stands
    loop = await conn.fetchval(
        """
        WITH RECURSIVE chain(user_id, depth) AS (
            SELECT $2::text, 0
            UNION ALL
            SELECT r.referrer_id, c.depth + 1 FROM referrals r
            JOIN chain c ON r.user_id = c.user_id WHERE c.depth < 1000
        )
        SELECT true FROM chain WHERE user_id = $1 LIMIT 1
        """,
        user_id,
        referrer_id,
    )
    if loop:
        return "INVITE_LOOP"
    inserted = await conn.fetchval(
        """
        INSERT INTO referrals (user_id, referrer_id, event_id) VALUES ($1, $2, $3)
        ON CONFLICT (user_id) DO NOTHING RETURNING true
        """,
        user_id,
        referrer_id,
        event_id,
    )
    return "RECORDED" if inserted else "ALREADY_REFERRED"


async def reward_invite(conn: Conn, referrer_id: str, invitee_id: str, rule_id: str) -> bool:
    """Claim the invite reward for this invitee and rule; False if it was paid before."""
    claimed = await conn.fetchval(
        """
        INSERT INTO invite_rewards (user_id, invitee_id, rule_id) VALUES ($1, $2, $3)
        ON CONFLICT DO NOTHING RETURNING true
        """,
        referrer_id,
        invitee_id,
        rule_id,
    )
    return bool(claimed)


# Points awarded to user $1 for events of the last 365 days (a tier's rolling year counts an
# event when it happened, not when it was reported), credited and not taken back.
POINTS_12M = f"""
    SELECT coalesce(sum(points), 0)::bigint FROM awards
    WHERE user_id = $1 AND coalesce(occurred_at, created_at) > now() - interval '365 days'
      AND {CREDITED} AND reversed_by IS NULL
"""


async def points_12m(conn: Conn, user_id: str) -> int:
    """Points awarded to the user in the last 365 days (not rejected, not taken back)."""
    total: int = await conn.fetchval(POINTS_12M, user_id)
    return total


async def member_state(
    conn: Conn, user_id: str, streak_rule_id: str, counter_keys: Sequence[tuple[str, str]]
) -> Record:
    """What a member's status shows, in one statement: points_12m, tier_id, the streak of
    `streak_rule_id` (last_day, length), `counted` as ("scope/period", points) pairs for
    `counter_keys`, and the last ten tier `changes` as (from, to, changed_at)."""
    row = await conn.fetchrow(
        f"""
        SELECT ({POINTS_12M}) AS points_12m,
               coalesce((SELECT tier_id FROM user_tiers WHERE user_id = $1), '') AS tier_id,
               s.last_day, coalesce(s.length, 0) AS length,
               ARRAY(SELECT (c.scope || '/' || c.period, c.points)
                     FROM unnest($3::text[], $4::text[]) AS k(scope, period)
                     JOIN counters c
                       ON c.user_id = $1 AND c.scope = k.scope AND c.period = k.period)
                   AS counted,
               ARRAY(SELECT (t.from_tier_id, t.to_tier_id, t.changed_at) FROM tier_changes t
                     WHERE t.user_id = $1 ORDER BY t.change_id DESC LIMIT 10) AS changes
        FROM (SELECT 1) AS one
        LEFT JOIN streaks s ON s.user_id = $1 AND s.rule_id = $2
        """,
        user_id,
        streak_rule_id,
        [k[0] for k in counter_keys],
        [k[1] for k in counter_keys],
    )
    assert row is not None
    return row


async def current_tier(conn: Conn, user_id: str) -> str:
    found: str | None = await conn.fetchval(
        "SELECT tier_id FROM user_tiers WHERE user_id = $1", user_id
    )
    return found or ""


async def set_tier(conn: Conn, user_id: str, before: str, after: str) -> None:
    await conn.execute(
        """
        WITH changed AS (
            INSERT INTO user_tiers (user_id, tier_id) VALUES ($1, $3)
            ON CONFLICT (user_id) DO UPDATE SET tier_id = EXCLUDED.tier_id, evaluated_at = now()
        )
        INSERT INTO tier_changes (user_id, from_tier_id, to_tier_id) VALUES ($1, $2, $3)
        """,
        user_id,
        before,
        after,
    )
