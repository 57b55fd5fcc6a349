"""Events as recorded: their answers, counters, streaks and completed tasks.
Functions run inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from asyncpg import Record

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.db import Conn
from services.rules.repository.risk import SIGNALS, RiskSignals, signals_of


async def save_event(
    conn: Conn,
    event: pb.Event,
    occurred_at: datetime,
    payload_sha256: bytes,
    response: pb.RecordEventResponse,
) -> None:
    await conn.execute(
        """
        INSERT INTO events (user_id, event_id, event_type, payload_sha256, response, occurred_at,
                            device_id, ip, decision, risk_reasons, amount_minor, currency, event)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        """,
        event.user_id,
        event.event_id,
        pb.EventType.Name(event.type),
        payload_sha256,
        response.SerializeToString(),
        occurred_at,
        event.device_id,
        event.ip,
        pb.Decision.Name(response.decision).removeprefix("DECISION_"),
        list(response.risk_reasons),
        event.amount.amount_minor if event.type == pb.EVENT_TYPE_PURCHASE else 0,
        event.amount.currency if event.type == pb.EVENT_TYPE_PURCHASE else "",
        _as_received(event, occurred_at),
    )


def _as_received(event: pb.Event, occurred_at: datetime) -> bytes:
    kept = pb.Event()
    kept.CopyFrom(event)
    kept.occurred_at.FromDatetime(occurred_at)
    return kept.SerializeToString()


_NEEDS_ORDER = (pb.EVENT_TYPE_PURCHASE, pb.EVENT_TYPE_REFUND)


_NEEDS_ITEM = (pb.EVENT_TYPE_LESSON_COMPLETED, pb.EVENT_TYPE_TASK_COMPLETED)


async def recorded_since(conn: Conn, since: datetime, limit: int) -> list[pb.Event]:
    """The newest `limit` events recorded since `since`, oldest first, as they were received
    (rebuilt from their columns for events recorded before bodies were kept: without order,
    item or referrer ids)."""
    rows = await conn.fetch(
        """
        SELECT * FROM (
            SELECT user_id, event_id, event_type, occurred_at, device_id, ip, amount_minor,
                   currency, event, recorded_at
            FROM events WHERE recorded_at >= $1
            ORDER BY recorded_at DESC, event_id DESC LIMIT $2
        ) newest ORDER BY recorded_at, event_id
        """,
        since,
        limit,
    )
    events = []
    for row in rows:
        if row["event"] is not None:
            events.append(pb.Event.FromString(row["event"]))
            continue
        event = pb.Event(
            event_id=row["event_id"],
            user_id=row["user_id"],
            type=pb.EventType.Value(row["event_type"]),
            device_id=row["device_id"],
            ip=row["ip"],
        )
        event.occurred_at.FromDatetime(row["occurred_at"])
        if event.type in _NEEDS_ORDER:
            event.order_id = row["event_id"]  # not kept: each event its own order
        if event.type in _NEEDS_ITEM:
            event.item_id = row["event_id"]  # not kept: each event its own item
        if row["currency"]:
            event.amount.amount_minor = row["amount_minor"]
            event.amount.currency = row["currency"]
        events.append(event)
    return events


async def event_context(
    conn: Conn, user_id: str, event_id: str, device_id: str, ip: str
) -> tuple[Record | None, RiskSignals]:
    """An event's recorded answer (payload_sha256, response) if it was recorded before, and
    the risk signals its evaluation needs: one round trip for both on the hot path."""
    row = await conn.fetchrow(
        f"""
        SELECT {SIGNALS}, prior.payload_sha256, prior.response
        FROM (SELECT 1) one
        LEFT JOIN events prior ON prior.user_id = $1 AND prior.event_id = $4
        """,
        user_id,
        device_id,
        ip,
        event_id,
    )
    assert row is not None
    return (row if row["payload_sha256"] is not None else None), signals_of(row)


async def counted(conn: Conn, user_id: str, keys: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Points counted so far for (scope, period) keys, by "scope/period"."""
    rows = await conn.fetch(
        """
        SELECT c.scope, c.period, c.points
        FROM unnest($2::text[], $3::text[]) AS k(scope, period)
        JOIN counters c ON c.user_id = $1 AND c.scope = k.scope AND c.period = k.period
        """,
        user_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {f"{r['scope']}/{r['period']}": r["points"] for r in rows}


async def count(conn: Conn, user_id: str, keys: Sequence[tuple[str, str]], points: int) -> None:
    await conn.execute(
        """
        INSERT INTO counters AS c (user_id, scope, period, points)
        SELECT $1, scope, period, $4 FROM unnest($2::text[], $3::text[]) AS k(scope, period)
        ON CONFLICT (user_id, scope, period) DO UPDATE SET points = c.points + EXCLUDED.points
        """,
        user_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
        points,
    )


async def streak(conn: Conn, user_id: str, rule_id: str) -> tuple[date | None, int]:
    row = await conn.fetchrow(
        "SELECT last_day, length FROM streaks WHERE user_id = $1 AND rule_id = $2",
        user_id,
        rule_id,
    )
    return (row["last_day"], row["length"]) if row else (None, 0)


async def save_streak(conn: Conn, user_id: str, rule_id: str, day: date, length: int) -> None:
    await conn.execute(
        """
        INSERT INTO streaks (user_id, rule_id, last_day, length) VALUES ($1, $2, $3, $4)
        ON CONFLICT (user_id, rule_id)
        DO UPDATE SET last_day = EXCLUDED.last_day, length = EXCLUDED.length
        """,
        user_id,
        rule_id,
        day,
        length,
    )


async def complete(conn: Conn, user_id: str, rule_id: str, item_id: str, event_id: str) -> bool:
    """Record a task done; False when it was done before."""
    done = await conn.fetchval(
        """
        INSERT INTO completions (user_id, rule_id, item_id, event_id) VALUES ($1, $2, $3, $4)
        ON CONFLICT DO NOTHING RETURNING true
        """,
        user_id,
        rule_id,
        item_id,
        event_id,
    )
    return bool(done)


async def user_events(
    conn: Conn, user_id: str, before: tuple[datetime, str] | None, fetch: int
) -> list[Record]:
    return list(
        await conn.fetch(
            """
        SELECT e.event_id, e.event_type, e.occurred_at, e.recorded_at, e.response,
               CASE WHEN e.decision = 'REVIEW' THEN (
                   -- awards are decided together; the ledger refuses only approved ones
                   SELECT CASE WHEN bool_or(a.review = 'PENDING') THEN 'PENDING'
                               WHEN bool_or(a.review = 'REJECTED') THEN 'REJECTED'
                               WHEN bool_or(a.review IN ('APPROVED', 'REFUSED')) THEN 'APPROVED'
                          END
                   FROM awards a WHERE a.user_id = e.user_id AND a.event_id = e.event_id)
               END AS review
        FROM events e
        WHERE e.user_id = $1
          AND ($2::timestamptz IS NULL OR (e.recorded_at, e.event_id) < ($2, $3))
        ORDER BY e.recorded_at DESC, e.event_id DESC
        LIMIT $4
        """,
            user_id,
            before[0] if before else None,
            before[1] if before else "",
            fetch,
        )
    )
