"""Events as recorded: their answers, counters, streaks and completed tasks.
Functions run inside the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from asyncpg import Record

from loyalty.rules.v1 import rules_pb2 as pb
from services.common import outbox
from services.common.db import Conn
from services.rules.repository.budgets import SPEND_WITHIN_LIMITS, spend_columns


def event_row(
    event: pb.Event, occurred_at: datetime, payload_sha256: bytes, response: pb.RecordEventResponse
) -> tuple[object, ...]:
    """The event as `write_effects` stores it, with the answer a replay gives."""
    purchase = event.type == pb.EVENT_TYPE_PURCHASE
    return (
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
        event.amount.amount_minor if purchase else 0,
        event.amount.currency if purchase else "",
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


@dataclass(frozen=True)
class Asked:
    """What `open_event` reads beside the lock: the member's counters as (scope, period), budget
    use as (budget_id, period_key), and the member's streaks by rule id."""

    counters: Sequence[tuple[str, str]] = ()
    budgets: Sequence[tuple[str, str]] = ()
    streak_rules: Sequence[str] = ()


async def open_event(
    conn: Conn, user_id: str, event_id: str, device_id: str, ip: str, asked: Asked
) -> Record:
    """Lock the member, then read what an event's evaluation reads, in one round trip (the
    function `open_event`, migration 0017): `at` (database time), `generation`, the recorded
    answer if the event id was seen (`prior_sha256`, `prior_response`; nothing else is read
    then), the risk signals, `since`, `tier_id`, and the asked counters, budgets and
    streaks."""
    row = await conn.fetchrow(
        "SELECT * FROM open_event($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        user_id,
        event_id,
        device_id,
        ip,
        [k[0] for k in asked.counters],
        [k[1] for k in asked.counters],
        [k[0] for k in asked.budgets],
        [k[1] for k in asked.budgets],
        list(asked.streak_rules),
    )
    assert row is not None
    return row


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


async def streak(conn: Conn, user_id: str, rule_id: str) -> tuple[date | None, int]:
    row = await conn.fetchrow(
        "SELECT last_day, length FROM streaks WHERE user_id = $1 AND rule_id = $2",
        user_id,
        rule_id,
    )
    return (row["last_day"], row["length"]) if row else (None, 0)


@dataclass
class Effects:
    """What an event's evaluation writes, in one statement (`write_effects`): counter
    increments by (user_id, scope, period), streaks by (user_id, rule_id) as (last_day,
    length), awards as `awards` rows in JSON, outbox events, budget spends as (budget_id,
    period_key, points, limit or None) and the event row itself (`event_row`)."""

    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    streaks: dict[tuple[str, str], tuple[date, int]] = field(default_factory=dict)
    awards: list[dict[str, object]] = field(default_factory=list)
    events: list[outbox.Event] = field(default_factory=list)
    spends: list[tuple[str, str, int, int | None]] = field(default_factory=list)
    event: tuple[object, ...] | None = None


async def write_effects(conn: Conn, effects: Effects) -> dict[str, int] | None:
    """Write `effects`; return each spent budget's use after, or None when a budget could not
    take its share within its limit (see `budgets.spend_within_limits`: the caller rolls back,
    since the rest was written)."""
    event = effects.event or (None,) * 13
    counts, streaks = effects.counts, effects.streaks
    rows = await conn.fetch(
        SPEND_WITHIN_LIMITS
        + """
        , counted AS (
            INSERT INTO counters AS c (user_id, scope, period, points)
            SELECT * FROM unnest($5::text[], $6::text[], $7::text[], $8::bigint[])
            ON CONFLICT (user_id, scope, period) DO UPDATE SET points = c.points + EXCLUDED.points
        ), streaked AS (
            INSERT INTO streaks (user_id, rule_id, last_day, length)
            SELECT * FROM unnest($9::text[], $10::text[], $11::date[], $12::integer[])
            ON CONFLICT (user_id, rule_id)
            DO UPDATE SET last_day = EXCLUDED.last_day, length = EXCLUDED.length
        ), awarded AS (
            INSERT INTO awards (user_id, event_id, rule_id, rule_version, points,
                                campaign_points, campaign_ids, order_id, matures_at, expires_at,
                                review, campaign_shares, tier_points, occurred_at, traceparent,
                                experiment_id, arm_id)
            SELECT user_id, event_id, rule_id, rule_version, points, campaign_points,
                   campaign_ids, order_id, matures_at, expires_at, review, campaign_shares,
                   tier_points, occurred_at, traceparent, experiment_id, arm_id
            FROM jsonb_populate_recordset(NULL::awards, $13::jsonb)
        ), announced AS (
            INSERT INTO outbox (type, member_id, data)
            SELECT * FROM unnest($14::text[], $15::text[], $16::jsonb[])
        ), recorded AS (
            INSERT INTO events (user_id, event_id, event_type, payload_sha256, response,
                                occurred_at, device_id, ip, decision, risk_reasons,
                                amount_minor, currency, event)
            SELECT $17::text, $18::text, $19::text, $20::bytea, $21::bytea, $22::timestamptz,
                   $23::text, $24::text, $25::text, $26::text[], $27::bigint, $28::text,
                   $29::bytea
            WHERE $17::text IS NOT NULL
        )
        SELECT budget_id, used FROM created UNION ALL SELECT budget_id, used FROM added
        """,
        *spend_columns(effects.spends),
        [k[0] for k in counts],
        [k[1] for k in counts],
        [k[2] for k in counts],
        list(counts.values()),
        [k[0] for k in streaks],
        [k[1] for k in streaks],
        [v[0] for v in streaks.values()],
        [v[1] for v in streaks.values()],
        json.dumps(effects.awards, default=str),
        *outbox.columns(effects.events),
        *event,
    )
    used = {r["budget_id"]: r["used"] for r in rows}
    return used if len(used) == len(effects.spends) else None


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
