"""Awards waiting for an operator's review. Functions run inside the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from asyncpg import Record

from services.common.db import Conn

# Keeps a month of events from being dropped (`partitions.keep`, alias p): an event whose
# awards still wait for an operator's review.
WAITING_FOR_REVIEW = (
    "p.decision = 'REVIEW' AND EXISTS (SELECT FROM awards a WHERE a.user_id = p.user_id "
    "AND a.event_id = p.event_id AND a.review = 'PENDING')"
)


async def reviews(conn: Conn, after: tuple[datetime, str, str] | None, fetch: int) -> list[Record]:
    """Events decided REVIEW that still have awards waiting, oldest first."""
    return list(
        await conn.fetch(
            """
        SELECT e.user_id, e.event_id, e.event_type, e.risk_reasons, e.recorded_at,
               e.device_id, e.ip, sum(a.points)::bigint AS points
        FROM events e
        JOIN awards a ON a.user_id = e.user_id AND a.event_id = e.event_id
        WHERE e.decision = 'REVIEW' AND a.review = 'PENDING'
          AND ($1::timestamptz IS NULL OR (e.recorded_at, e.user_id, e.event_id) > ($1, $2, $3))
        GROUP BY e.user_id, e.event_id, e.event_type, e.risk_reasons, e.recorded_at,
                 e.device_id, e.ip
        ORDER BY e.recorded_at, e.user_id, e.event_id
        LIMIT $4
        """,
            after[0] if after else None,
            after[1] if after else "",
            after[2] if after else "",
            fetch,
        )
    )


async def decide_review(conn: Conn, user_id: str, event_id: str, decision: str) -> int | None:
    """APPROVED or REJECTED for the event's waiting awards; their points, None if none."""
    total: int | None = await conn.fetchval(
        """
        WITH decided AS (
            UPDATE awards SET review = $3
            WHERE user_id = $1 AND event_id = $2 AND review = 'PENDING'
            RETURNING points
        )
        SELECT sum(points)::bigint FROM decided
        """,
        user_id,
        event_id,
        decision,
    )
    return total


async def waiting_count(conn: Conn) -> int:
    """How many events have awards waiting for a decision."""
    return int(
        await conn.fetchval(
            "SELECT count(DISTINCT (a.user_id, a.event_id)) FROM awards a "
            "WHERE a.review = 'PENDING'"
        )
    )
