"""Awards and their settlement with the ledger. Functions run inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from asyncpg import Record

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.db import Conn


def award_row(
    event: pb.Event,
    occurred_at: datetime,
    rule: pb.Rule,
    award: pb.Award,
    matures_at: datetime | None,
    expires_at: datetime | None,
    in_review: bool = False,
) -> dict[str, object]:
    """An award for the event's user, or for its beneficiary (a referrer), keyed so it never
    collides with the beneficiary's own events: the `awards` columns by name, as
    events.write_effects stores them."""
    beneficiary = award.beneficiary_user_id
    return {
        "user_id": beneficiary or event.user_id,
        "event_id": f"invite:{event.user_id}:{event.event_id}" if beneficiary else event.event_id,
        "rule_id": rule.rule_id,
        "rule_version": rule.version,
        "points": award.points,
        "campaign_points": award.campaign_points,
        "campaign_ids": list(award.campaign_ids),
        "order_id": event.order_id,
        "matures_at": matures_at,
        "expires_at": expires_at,
        "review": "PENDING" if in_review else "",
        "campaign_shares": list(award.campaign_shares),
        "tier_points": award.tier_points,
        "occurred_at": occurred_at,
        "experiment_id": award.experiment_id,
        "arm_id": award.arm_id,
    }


async def reverse_order(conn: Conn, user_id: str, order_id: str, refund_event_id: str) -> int:
    """Mark the order's purchase awards as taken back by this refund; return their points."""
    total: int = await conn.fetchval(
        """
        WITH marked AS (
            UPDATE awards SET reversed_by = $3
            WHERE user_id = $1 AND order_id = $2 AND reversed_by IS NULL
            RETURNING points
        )
        SELECT coalesce(sum(points), 0)::bigint FROM marked
        """,
        user_id,
        order_id,
        refund_event_id,
    )
    return total


async def unsettled(conn: Conn, user_ids: Sequence[str]) -> list[Record]:
    """Awards of these users the ledger has yet to credit or reverse, oldest first per user."""
    return list(
        await conn.fetch(
            """
            SELECT * FROM awards
            WHERE user_id = ANY($1::text[]) AND review IN ('', 'APPROVED')
              AND (transfer_id IS NULL OR (reversed_by IS NOT NULL AND NOT reversed))
            ORDER BY user_id, created_at, event_id, rule_id
            """,
            list(user_ids),
        )
    )


async def users_with_unsettled(conn: Conn, limit: int) -> dict[str, list[str]]:
    """Users with awards left to settle, each with the traces that earned them."""
    rows = await conn.fetch(
        """
        SELECT user_id, array_remove(array_agg(DISTINCT traceparent), NULL) AS traces
        FROM awards
        WHERE review IN ('', 'APPROVED')
          AND (transfer_id IS NULL OR (reversed_by IS NOT NULL AND NOT reversed))
        GROUP BY user_id
        LIMIT $1
        """,
        limit,
    )
    return {r["user_id"]: r["traces"] for r in rows}


async def mark_credited(conn: Conn, credited: Sequence[tuple[Record, str]]) -> None:
    """Record the ledger transfer of each credited award."""
    await conn.execute(
        """
        UPDATE awards a SET transfer_id = c.transfer_id
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
             AS c(user_id, event_id, rule_id, transfer_id)
        WHERE a.user_id = c.user_id AND a.event_id = c.event_id AND a.rule_id = c.rule_id
        """,
        [award["user_id"] for award, _ in credited],
        [award["event_id"] for award, _ in credited],
        [award["rule_id"] for award, _ in credited],
        [transfer_id for _, transfer_id in credited],
    )


async def mark_refused(conn: Conn, user_id: str, event_id: str, rule_id: str) -> None:
    """The ledger will never credit this award: stop sending it and stop counting it."""
    await conn.execute(
        "UPDATE awards SET review = 'REFUSED' "
        "WHERE user_id = $1 AND event_id = $2 AND rule_id = $3 AND transfer_id IS NULL",
        user_id,
        event_id,
        rule_id,
    )


async def reopen_refused(conn: Conn, user_id: str, event_id: str, rule_id: str) -> bool:
    """Send a refused award again (an operator's retry); False when it is not refused."""
    reopened = await conn.fetchval(
        "UPDATE awards SET review = '' WHERE user_id = $1 AND event_id = $2 AND rule_id = $3 "
        "AND review = 'REFUSED' RETURNING true",
        user_id,
        event_id,
        rule_id,
    )
    return bool(reopened)


async def credited_transfer(conn: Conn, user_id: str, event_id: str, rule_id: str) -> str | None:
    transfer_id: str | None = await conn.fetchval(
        "SELECT transfer_id FROM awards WHERE user_id = $1 AND event_id = $2 AND rule_id = $3",
        user_id,
        event_id,
        rule_id,
    )
    return transfer_id


async def mark_reversed(conn: Conn, awards: Sequence[Record]) -> None:
    await conn.execute(
        """
        UPDATE awards a SET reversed = true
        FROM unnest($1::text[], $2::text[], $3::text[]) AS r(user_id, event_id, rule_id)
        WHERE a.user_id = r.user_id AND a.event_id = r.event_id AND a.rule_id = r.rule_id
        """,
        [award["user_id"] for award in awards],
        [award["event_id"] for award in awards],
        [award["rule_id"] for award in awards],
    )


# Awards that are (or will be) credited: not waiting for a review, not rejected, not refused.
CREDITED = "review IN ('', 'APPROVED')"
