"""The webhooks service's SQL: subscriptions, published events, deliveries and attempts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from asyncpg import Record

from services.common.db import Conn

DELIVERIES_CHANNEL = "points_deliveries"  # notified when deliveries are queued
# '*' is every event of the program; the operators' audit trail goes only to those naming it.
_MATCHES = (
    "(e.type = ANY(s.event_types) OR ('*' = ANY(s.event_types) AND e.type <> 'audit.recorded'))"
)
_SUBSCRIPTION = """
    SELECT s.*, (SELECT count(*) FROM deliveries d
                 WHERE d.subscription_id = s.subscription_id AND d.status = 'PENDING')
                AS pending
    FROM subscriptions s
"""


async def publish(conn: Conn, events: Sequence[tuple[object, ...]]) -> tuple[int, int]:
    """Store new events (by id) and queue a delivery to each enabled subscription that wants
    them, in the order given, and wake the delivery workers (NOTIFY points_deliveries);
    returns (events new, deliveries queued)."""
    columns = [list(c) for c in zip(*events, strict=True)] if events else [[] for _ in range(7)]
    row = await conn.fetchrow(
        f"""
        WITH incoming AS (
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[],
                                 $5::text[], $6::bigint[], $7::text[])
                WITH ORDINALITY AS i(event_id, type, member_id, occurred_at, source, sequence,
                                     body, position)
        ), new AS (
            INSERT INTO events (event_id, type, member_id, occurred_at, source, sequence, body)
            SELECT event_id, type, member_id, occurred_at, source, sequence, body
            FROM incoming ORDER BY position
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id, type, member_id
        ), queued AS (
            INSERT INTO deliveries (subscription_id, event_id, member_id)
            SELECT s.subscription_id, e.event_id, e.member_id
            FROM new e JOIN incoming i USING (event_id)
            JOIN subscriptions s ON s.enabled AND {_MATCHES}
            ORDER BY i.position, s.subscription_id
            RETURNING 1
        ), woken AS (  -- every replica's workers start on them when this commits
            SELECT pg_notify('{DELIVERIES_CHANNEL}', '') WHERE EXISTS (SELECT FROM queued)
        )
        SELECT (SELECT count(*) FROM new) AS accepted, (SELECT count(*) FROM queued) AS queued,
               (SELECT count(*) FROM woken) AS woken
        """,
        *columns,
    )
    assert row is not None
    return row["accepted"], row["queued"]


async def create_subscription(
    conn: Conn, url: str, event_types: Sequence[str], description: str, secret: str
) -> Record:
    subscription_id = await conn.fetchval(
        "INSERT INTO subscriptions (url, event_types, description, secret) "
        "VALUES ($1, $2, $3, $4) RETURNING subscription_id",
        url,
        list(event_types),
        description,
        secret,
    )
    found = await subscription(conn, subscription_id)
    assert found is not None
    return found


async def subscription(conn: Conn, subscription_id: int) -> Record | None:
    return await conn.fetchrow(_SUBSCRIPTION + " WHERE s.subscription_id = $1", subscription_id)


async def subscriptions(conn: Conn) -> list[Record]:
    return list(await conn.fetch(_SUBSCRIPTION + " ORDER BY s.subscription_id"))


async def update_subscription(
    conn: Conn,
    subscription_id: int,
    url: str,
    event_types: Sequence[str],
    description: str,
    enabled: bool,
) -> Record | None:
    """Replace what an operator sets; enabling clears the reason the service disabled it."""
    updated = await conn.fetchval(
        """
        UPDATE subscriptions SET url = $2, event_types = $3, description = $4, enabled = $5,
            disabled_reason = CASE WHEN $5 THEN '' ELSE disabled_reason END, updated_at = now()
        WHERE subscription_id = $1 RETURNING subscription_id
        """,
        subscription_id,
        url,
        list(event_types),
        description,
        enabled,
    )
    return None if updated is None else await subscription(conn, subscription_id)


async def rotate_secret(
    conn: Conn, subscription_id: int, secret: str, overlap_seconds: int
) -> Record | None:
    updated = await conn.fetchval(
        """
        UPDATE subscriptions SET previous_secret = secret, secret = $2,
            previous_secret_until = now() + make_interval(secs => $3), updated_at = now()
        WHERE subscription_id = $1 RETURNING subscription_id
        """,
        subscription_id,
        secret,
        overlap_seconds,
    )
    return None if updated is None else await subscription(conn, subscription_id)


async def disable(conn: Conn, subscription_id: int, reason: str) -> None:
    await conn.execute(
        "UPDATE subscriptions SET enabled = false, disabled_reason = $2, updated_at = now() "
        "WHERE subscription_id = $1",
        subscription_id,
        reason,
    )


async def claim(conn: Conn, limit: int, lease_seconds: float) -> list[Record]:
    """Lease up to `limit` due deliveries, each the earliest pending one of its member for its
    subscription (so a member's events go out in order), skipping rows other workers hold."""
    return list(
        await conn.fetch(
            """
            WITH due AS (
                SELECT d.delivery_id FROM deliveries d
                JOIN subscriptions s ON s.subscription_id = d.subscription_id AND s.enabled
                WHERE d.status = 'PENDING' AND d.next_attempt_at <= now()
                  AND (d.leased_until IS NULL OR d.leased_until < now())
                  AND NOT EXISTS (
                      SELECT FROM deliveries e
                      WHERE e.subscription_id = d.subscription_id
                        AND e.member_id = d.member_id AND e.status = 'PENDING'
                        AND e.delivery_id < d.delivery_id)
                ORDER BY d.next_attempt_at, d.delivery_id
                LIMIT $1
                FOR UPDATE OF d SKIP LOCKED
            )
            UPDATE deliveries d
            SET leased_until = now() + make_interval(secs => $2), attempts = d.attempts + 1
            FROM due, events e, subscriptions s
            WHERE d.delivery_id = due.delivery_id AND e.event_id = d.event_id
              AND s.subscription_id = d.subscription_id
            RETURNING d.delivery_id, d.subscription_id, d.attempts, e.event_id, e.body,
                      s.url, s.secret,
                      CASE WHEN s.previous_secret_until > now() THEN s.previous_secret END
                          AS previous_secret
            """,
            limit,
            lease_seconds,
        )
    )


async def record_attempt(
    conn: Conn,
    delivery_id: int,
    attempt: int,
    status: int,
    latency_ms: int,
    error: str,
    response: str,
    outcome: str,
    retry_in_seconds: float,
) -> None:
    """Record an attempt: `outcome` DELIVERED, FAILED (given up) or PENDING (retry after
    `retry_in_seconds`). Only the lease holder's record counts (its attempt number)."""
    await conn.execute(
        """
        WITH moved AS (
            UPDATE deliveries SET status = $7, leased_until = NULL, last_status = $3,
                last_latency_ms = $4, last_error = $5, last_response = $6,
                next_attempt_at = now() + make_interval(secs => $8),
                delivered_at = CASE WHEN $7 = 'DELIVERED' THEN now() END
            WHERE delivery_id = $1 AND attempts = $2 AND status = 'PENDING'
            RETURNING delivery_id
        )
        INSERT INTO attempts (delivery_id, attempt, status, latency_ms, error)
        SELECT delivery_id, $2, $3, $4, $5 FROM moved
        """,
        delivery_id,
        attempt,
        status,
        latency_ms,
        error,
        response,
        outcome,
        retry_in_seconds,
    )


async def deliveries(
    conn: Conn, subscription_id: int, status: str | None, before: int | None, limit: int
) -> list[Record]:
    return list(
        await conn.fetch(
            """
            SELECT d.*, e.type AS event_type FROM deliveries d JOIN events e USING (event_id)
            WHERE d.subscription_id = $1 AND ($2::text IS NULL OR d.status = $2)
              AND ($3::bigint IS NULL OR d.delivery_id < $3)
            ORDER BY d.delivery_id DESC LIMIT $4
            """,
            subscription_id,
            status,
            before,
            limit,
        )
    )


async def redeliver(conn: Conn, delivery_id: int) -> Record | None:
    """A new delivery of the same event to the same subscription (after the member's others)."""
    return await conn.fetchrow(
        """
        WITH again AS (
            INSERT INTO deliveries (subscription_id, event_id, member_id)
            SELECT subscription_id, event_id, member_id FROM deliveries WHERE delivery_id = $1
            RETURNING *
        )
        SELECT again.*, e.type AS event_type FROM again JOIN events e USING (event_id)
        """,
        delivery_id,
    )


async def replay(conn: Conn, subscription_id: int, start: datetime, end: datetime) -> int:
    """Queue again every event of [start, end) the subscription wants, in order."""
    queued: int = await conn.fetchval(
        f"""
        WITH again AS (
            INSERT INTO deliveries (subscription_id, event_id, member_id)
            SELECT s.subscription_id, e.event_id, e.member_id
            FROM events e JOIN subscriptions s ON s.subscription_id = $1 AND {_MATCHES}
            WHERE e.occurred_at >= $2 AND e.occurred_at < $3
            ORDER BY e.occurred_at, e.source, e.sequence
            RETURNING 1
        )
        SELECT count(*) FROM again
        """,
        subscription_id,
        start,
        end,
    )
    return queued


async def gauges(conn: Conn) -> Record:
    row = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM deliveries WHERE status = 'PENDING') AS pending,
               (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)
                FROM deliveries WHERE status = 'PENDING')::float8 AS oldest,
               (SELECT count(*) FROM subscriptions WHERE NOT enabled) AS disabled
        """
    )
    assert row is not None
    return row


async def forget_settled(conn: Conn, older_than: timedelta, limit: int) -> int:
    """Delete up to `limit` deliveries (with their attempts) that were delivered or given up on
    longer than `older_than` ago; how many went. A pending one is never deleted."""
    deleted: int = await conn.fetchval(
        """
        WITH old AS (
            SELECT delivery_id FROM deliveries
            WHERE status <> 'PENDING' AND created_at < now() - $1::interval
            ORDER BY delivery_id LIMIT $2
        ), gone AS (
            DELETE FROM deliveries d USING old WHERE d.delivery_id = old.delivery_id RETURNING 1
        )
        SELECT count(*) FROM gone
        """,
        older_than,
        limit,
    )
    return deleted


async def forget_events(conn: Conn, older_than: timedelta, limit: int) -> int:
    """Delete up to `limit` events that occurred longer than `older_than` ago and that no
    delivery refers to any more; how many went."""
    deleted: int = await conn.fetchval(
        """
        WITH old AS (
            SELECT event_id FROM events e
            WHERE occurred_at < now() - $1::interval
              AND NOT EXISTS (SELECT FROM deliveries d WHERE d.event_id = e.event_id)
            ORDER BY occurred_at LIMIT $2
        ), gone AS (
            DELETE FROM events e USING old WHERE e.event_id = old.event_id RETURNING 1
        )
        SELECT count(*) FROM gone
        """,
        older_than,
        limit,
    )
    return deleted
