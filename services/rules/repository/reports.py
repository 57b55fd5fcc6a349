"""Issuance reports and the service's gauges. Functions run inside the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asyncpg import Record

from services.common.db import Conn
from services.rules.repository.awards import CREDITED


@dataclass(frozen=True)
class Issuance:
    points: int  # credited (or to be), refunded purchases included
    in_review: int  # waiting for a review decision, not in `points`
    tier_points: int  # of `points`, added by tier multipliers
    purchases: int  # in the program's currency, minor units
    by_rule: list[Record]  # (id, points)
    by_campaign: list[Record]  # (id, points): the extra each campaign added; they add up


async def issuance(
    conn: Conn, start: datetime | None, end: datetime | None, currency: str
) -> Issuance:
    """Points awarded in [start, end) by when they were recorded, as the ledger saw them."""
    # Infinities for open ends: a generic plan uses the index on created_at only for a range.
    window = """
        created_at >= coalesce($1::timestamptz, '-infinity')
        AND created_at < coalesce($2::timestamptz, 'infinity')
    """
    totals = await conn.fetchrow(
        f"""
        SELECT coalesce(sum(points) FILTER (WHERE {CREDITED}), 0)::bigint AS points,
               coalesce(sum(points) FILTER (WHERE review = 'PENDING'), 0)::bigint AS in_review,
               coalesce(sum(tier_points) FILTER (WHERE {CREDITED}), 0)::bigint AS tier_points
        FROM awards WHERE {window}
        """,
        start,
        end,
    )
    assert totals is not None
    purchases: int = await conn.fetchval(
        """
        SELECT coalesce(sum(amount_minor), 0)::bigint FROM events
        WHERE event_type = 'EVENT_TYPE_PURCHASE' AND currency = $3 AND decision <> 'DENY'
          AND recorded_at >= coalesce($1::timestamptz, '-infinity')
          AND recorded_at < coalesce($2::timestamptz, 'infinity')
        """,
        start,
        end,
        currency,
    )
    by_rule = await conn.fetch(
        f"SELECT rule_id AS id, sum(points)::bigint AS points FROM awards "
        f"WHERE {CREDITED} AND {window} GROUP BY 1 ORDER BY 1",
        start,
        end,
    )
    # Awards from before shares were recorded split their extra evenly (see migration 0005).
    by_campaign = await conn.fetch(
        f"""
        SELECT x.id, sum(coalesce(x.share, campaign_points / cardinality(campaign_ids)))::bigint
               AS points
        FROM awards, unnest(campaign_ids, campaign_shares) AS x(id, share)
        WHERE {CREDITED} AND {window} AND x.id IS NOT NULL GROUP BY 1 ORDER BY 1
        """,
        start,
        end,
    )
    return Issuance(
        totals["points"],
        totals["in_review"],
        totals["tier_points"],
        purchases,
        list(by_rule),
        list(by_campaign),
    )


async def gauges(conn: Conn) -> Record:
    """What the rules service's sampled gauges report (see `measures.py`)."""
    row = await conn.fetchrow(
        """
        SELECT
          (SELECT count(*) FROM awards
           WHERE review IN ('', 'APPROVED')
             AND (transfer_id IS NULL OR (reversed_by IS NOT NULL AND NOT reversed)))
              AS unsettled,
          (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM awards
           WHERE review IN ('', 'APPROVED')
             AND (transfer_id IS NULL OR (reversed_by IS NOT NULL AND NOT reversed)))::float8
              AS unsettled_age,
          (SELECT count(DISTINCT (user_id, event_id)) FROM awards WHERE review = 'PENDING')
              AS in_review
        """
    )
    assert row is not None
    return row
