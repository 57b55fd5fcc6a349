"""SQL of the rules service. Functions run inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypeVar

from asyncpg import Record
from google.protobuf.message import Message

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.db import Conn
from services.common.telemetry import current_traceparent

M = TypeVar("M", bound=Message)


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


@dataclass(frozen=True)
class RiskSignals:
    blacklisted: list[str]  # kinds (USER, DEVICE, IP) with an active entry matching the event
    recent_events: int  # events recorded for the user in the last minute
    device_accounts: int  # distinct accounts (this one included) on the device in the last day
    ip_accounts: int  # the same for the IP


async def risk_signals(conn: Conn, user_id: str, device_id: str, ip: str) -> RiskSignals:
    """Every signal the risk decision always needs, in one round trip."""
    row = await conn.fetchrow(f"SELECT {_SIGNALS}", user_id, device_id, ip)
    assert row is not None
    return _signals(row)


async def event_context(
    conn: Conn, user_id: str, event_id: str, device_id: str, ip: str
) -> tuple[Record | None, RiskSignals]:
    """An event's recorded answer (payload_sha256, response) if it was recorded before, and
    the risk signals its evaluation needs: one round trip for both on the hot path."""
    row = await conn.fetchrow(
        f"""
        SELECT {_SIGNALS}, prior.payload_sha256, prior.response
        FROM (SELECT 1) one
        LEFT JOIN events prior ON prior.user_id = $1 AND prior.event_id = $4
        """,
        user_id,
        device_id,
        ip,
        event_id,
    )
    assert row is not None
    return (row if row["payload_sha256"] is not None else None), _signals(row)


def _signals(row: Record) -> RiskSignals:
    return RiskSignals(
        row["blacklisted"], row["recent"], row["device_accounts"], row["ip_accounts"]
    )


# The risk signals as select-list items over $1 user_id, $2 device_id, $3 ip.
_SIGNALS = """
            ARRAY(
                SELECT kind FROM blacklist
                WHERE (expires_at IS NULL OR expires_at > now())
                  AND ((kind = 'USER' AND value = $1)
                       OR (kind = 'DEVICE' AND value = $2 AND $2 <> '')
                       OR (kind = 'IP' AND value = $3 AND $3 <> ''))
                ORDER BY kind
            ) AS blacklisted,
            (SELECT count(*) FROM events
             WHERE user_id = $1 AND recorded_at > now() - interval '1 min') AS recent,
            CASE WHEN $2 = '' THEN 0 ELSE (
                SELECT count(*) FROM (
                    SELECT user_id FROM events
                    WHERE device_id = $2 AND recorded_at > now() - interval '1 day'
                    UNION SELECT $1
                ) accounts) END AS device_accounts,
            CASE WHEN $3 = '' THEN 0 ELSE (
                SELECT count(*) FROM (
                    SELECT user_id FROM events
                    WHERE ip = $3 AND recorded_at > now() - interval '1 day'
                    UNION SELECT $1
                ) accounts) END AS ip_accounts
"""


async def all_rules(conn: Conn) -> list[pb.Rule]:
    rows = await conn.fetch("SELECT definition FROM rules ORDER BY rule_id")
    return [pb.Rule.FromString(r["definition"]) for r in rows]


async def program_snapshot(conn: Conn) -> Record:
    """Every enabled rule, cap group, campaign, budget and tier with the configuration's
    generation, in one statement (one snapshot)."""
    row = await conn.fetchrow(
        """
        SELECT (SELECT generation FROM config_generation) AS generation,
               ARRAY(SELECT definition FROM rules WHERE enabled ORDER BY rule_id) AS rules,
               ARRAY(SELECT name FROM cap_groups ORDER BY name) AS group_names,
               ARRAY(SELECT daily_cap FROM cap_groups ORDER BY name) AS group_caps,
               ARRAY(SELECT definition FROM campaigns WHERE enabled
                     ORDER BY campaign_id) AS campaigns,
               ARRAY(SELECT definition FROM budgets ORDER BY budget_id) AS budgets,
               ARRAY(SELECT definition FROM tiers
                     ORDER BY min_points_12m, tier_id) AS tiers
        """
    )
    assert row is not None
    return row


async def lock_rule(conn: Conn, rule_id: str) -> None:
    """Serialise changes to one rule (its versions), for this transaction."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"points.rules.{rule_id}"
    )


def unchanged(latest: Record | None, message: M) -> M | None:
    """The latest stored version when `message` says the same (its version aside): saving it
    again makes no new version."""
    if latest is None:
        return None
    stored = type(message).FromString(latest["definition"])
    asked = type(message)()
    asked.CopyFrom(message)
    asked.version = stored.version  # type: ignore[attr-defined]
    return stored if asked == stored else None


async def save_rule(conn: Conn, rule: pb.Rule, actor: str = "") -> pb.Rule:
    """Store a new version of the rule (kept forever in rule_versions) unless it is the same
    as the latest; return it as stored."""
    latest = await conn.fetchrow(
        "SELECT version, definition FROM rule_versions WHERE rule_id = $1 "
        "ORDER BY version DESC LIMIT 1",
        rule.rule_id,
    )
    same = unchanged(latest, rule)
    if same is not None:
        return same
    version = (latest["version"] if latest else 0) + 1
    stored = pb.Rule()
    stored.CopyFrom(rule)
    stored.version = version
    definition = stored.SerializeToString()
    await conn.execute(
        """
        WITH kept AS (
            INSERT INTO rule_versions (rule_id, version, definition, actor)
            VALUES ($1, $4, $5, $6)
        )
        INSERT INTO rules (rule_id, event_type, enabled, version, definition)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (rule_id) DO UPDATE SET event_type = EXCLUDED.event_type,
            enabled = EXCLUDED.enabled, version = EXCLUDED.version,
            definition = EXCLUDED.definition, updated_at = now()
        """,
        rule.rule_id,
        pb.EventType.Name(rule.event_type),
        rule.enabled,
        version,
        definition,
        actor,
    )
    return stored


async def save_cap_group(conn: Conn, name: str, daily_cap: int) -> None:
    await conn.execute(
        "INSERT INTO cap_groups (name, daily_cap) VALUES ($1, $2) "
        "ON CONFLICT (name) DO UPDATE SET daily_cap = EXCLUDED.daily_cap",
        name,
        daily_cap,
    )


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


async def add_award(
    conn: Conn,
    event: pb.Event,
    occurred_at: datetime,
    rule: pb.Rule,
    award: pb.Award,
    matures_at: datetime | None,
    expires_at: datetime | None,
    in_review: bool = False,
) -> None:
    """An award for the event's user, or for its beneficiary (a referrer), keyed so it never
    collides with the beneficiary's own events."""
    beneficiary = award.beneficiary_user_id
    await conn.execute(
        """
        INSERT INTO awards (user_id, event_id, rule_id, rule_version, points, campaign_points,
                            campaign_ids, order_id, matures_at, expires_at, review,
                            campaign_shares, tier_points, occurred_at, traceparent)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
        """,
        beneficiary or event.user_id,
        f"invite:{event.user_id}:{event.event_id}" if beneficiary else event.event_id,
        rule.rule_id,
        rule.version,
        award.points,
        award.campaign_points,
        list(award.campaign_ids),
        event.order_id,
        matures_at,
        expires_at,
        "PENDING" if in_review else "",
        list(award.campaign_shares),
        award.tier_points,
        occurred_at,
        current_traceparent(),
    )


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


async def save_blacklist(
    conn: Conn, kind: str, value: str, reason: str, expires_at: datetime | None
) -> None:
    await conn.execute(
        """
        INSERT INTO blacklist (kind, value, reason, expires_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT (kind, value)
        DO UPDATE SET reason = EXCLUDED.reason, expires_at = EXCLUDED.expires_at
        """,
        kind,
        value,
        reason,
        expires_at,
    )


async def delete_blacklist(conn: Conn, kind: str, value: str) -> bool:
    deleted = await conn.fetchval(
        "DELETE FROM blacklist WHERE kind = $1 AND value = $2 RETURNING true", kind, value
    )
    return bool(deleted)


async def new_version(conn: Conn, kind: str, key: str, message: M, actor: str = "") -> M:
    """Keep a new version of a campaign, tier or budget unless it is the same as the latest;
    return it with its version set."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"points.rules.{kind}.{key}"
    )
    latest = await conn.fetchrow(
        "SELECT version, definition FROM config_versions WHERE kind = $1 AND id = $2 "
        "ORDER BY version DESC LIMIT 1",
        kind,
        key,
    )
    same = unchanged(latest, message)
    if same is not None:
        return same
    version = (latest["version"] if latest else 0) + 1
    stored = type(message)()
    stored.CopyFrom(message)
    stored.version = version  # type: ignore[attr-defined]
    await conn.execute(
        "INSERT INTO config_versions (kind, id, version, definition, actor) "
        "VALUES ($1, $2, $3, $4, $5)",
        kind,
        key,
        version,
        stored.SerializeToString(),
        actor,
    )
    return stored


async def versions(conn: Conn, kind: str, key: str, before: int | None, limit: int) -> list[Record]:
    """Versions of a rule ('rule') or a campaign, tier or budget, newest first, below
    `before` when given: (version, created_at, actor, definition)."""
    if kind == "rule":
        query = """
            SELECT version, created_at, actor, definition FROM rule_versions
            WHERE rule_id = $1 AND ($2::int IS NULL OR version < $2)
            ORDER BY version DESC LIMIT $3
        """
        args: tuple[object, ...] = (key, before, limit)
    else:
        query = """
            SELECT version, created_at, actor, definition FROM config_versions
            WHERE kind = $4 AND id = $1 AND ($2::int IS NULL OR version < $2)
            ORDER BY version DESC LIMIT $3
        """
        args = (key, before, limit, kind)
    return list(await conn.fetch(query, *args))


async def save_campaign(conn: Conn, campaign: pb.Campaign) -> None:
    await conn.execute(
        """
        INSERT INTO campaigns (campaign_id, enabled, starts_at, ends_at, definition)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (campaign_id) DO UPDATE SET enabled = EXCLUDED.enabled,
            starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
            definition = EXCLUDED.definition, updated_at = now()
        """,
        campaign.campaign_id,
        campaign.enabled,
        campaign.start_time.ToDatetime(tzinfo=UTC),
        campaign.end_time.ToDatetime(tzinfo=UTC),
        campaign.SerializeToString(),
    )


async def all_campaigns(conn: Conn) -> list[pb.Campaign]:
    rows = await conn.fetch("SELECT definition FROM campaigns ORDER BY campaign_id")
    return [pb.Campaign.FromString(r["definition"]) for r in rows]


async def user_since(conn: Conn, user_id: str) -> datetime:
    since: datetime = await conn.fetchval(
        "SELECT created_at FROM users WHERE user_id = $1", user_id
    )
    return since


async def save_budget(conn: Conn, budget: pb.Budget) -> None:
    await conn.execute(
        """
        INSERT INTO budgets (budget_id, definition, global) VALUES ($1, $2, $3)
        ON CONFLICT (budget_id) DO UPDATE SET definition = EXCLUDED.definition,
            global = EXCLUDED.global, updated_at = now()
        """,
        budget.budget_id,
        budget.SerializeToString(),
        budget.applies_to_all,
    )


async def delete_budget(conn: Conn, budget_id: str) -> bool:
    """Delete a budget (its trigger bumps the configuration's generation); False if absent."""
    deleted = await conn.fetchval(
        "DELETE FROM budgets WHERE budget_id = $1 RETURNING true", budget_id
    )
    return bool(deleted)


async def all_budgets(conn: Conn) -> list[pb.Budget]:
    rows = await conn.fetch("SELECT definition FROM budgets ORDER BY budget_id")
    return [pb.Budget.FromString(r["definition"]) for r in rows]


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


# Keeps a month of events from being dropped (`partitions.keep`, alias p): an event whose
# awards still wait for an operator's review.
WAITING_FOR_REVIEW = (
    "p.decision = 'REVIEW' AND EXISTS (SELECT FROM awards a WHERE a.user_id = p.user_id "
    "AND a.event_id = p.event_id AND a.review = 'PENDING')"
)


async def reviews(conn: Conn, after: tuple[datetime, str, str] | None, limit: int) -> list[Record]:
    """Events decided REVIEW that still have awards waiting, oldest first."""
    return list(
        await conn.fetch(
            """
        SELECT e.user_id, e.event_id, e.event_type, e.risk_reasons, e.recorded_at,
               sum(a.points)::bigint AS points
        FROM events e
        JOIN awards a ON a.user_id = e.user_id AND a.event_id = e.event_id
        WHERE e.decision = 'REVIEW' AND a.review = 'PENDING'
          AND ($1::timestamptz IS NULL OR (e.recorded_at, e.user_id, e.event_id) > ($1, $2, $3))
        GROUP BY e.user_id, e.event_id, e.event_type, e.risk_reasons, e.recorded_at
        ORDER BY e.recorded_at, e.user_id, e.event_id
        LIMIT $4
        """,
            after[0] if after else None,
            after[1] if after else "",
            after[2] if after else "",
            limit + 1,
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


async def save_tier(conn: Conn, tier: pb.Tier) -> None:
    await conn.execute(
        """
        INSERT INTO tiers (tier_id, min_points_12m, definition) VALUES ($1, $2, $3)
        ON CONFLICT (tier_id) DO UPDATE SET min_points_12m = EXCLUDED.min_points_12m,
            definition = EXCLUDED.definition
        """,
        tier.tier_id,
        tier.min_points_12m,
        tier.SerializeToString(),
    )


async def all_tiers(conn: Conn) -> list[pb.Tier]:
    rows = await conn.fetch("SELECT definition FROM tiers ORDER BY min_points_12m, tier_id")
    return [pb.Tier.FromString(r["definition"]) for r in rows]


# Awards that are (or will be) credited: not waiting for a review, not rejected, not refused.
_CREDITED = "review IN ('', 'APPROVED')"

# Points awarded to user $1 for events of the last 365 days (a tier's rolling year counts an
# event when it happened, not when it was reported), credited and not taken back.
_POINTS_12M = f"""
    SELECT coalesce(sum(points), 0)::bigint FROM awards
    WHERE user_id = $1 AND coalesce(occurred_at, created_at) > now() - interval '365 days'
      AND {_CREDITED} AND reversed_by IS NULL
"""


async def points_12m(conn: Conn, user_id: str) -> int:
    """Points awarded to the user in the last 365 days (not rejected, not taken back)."""
    total: int = await conn.fetchval(_POINTS_12M, user_id)
    return total


async def member_state(
    conn: Conn, user_id: str, streak_rule_id: str, counter_keys: Sequence[tuple[str, str]]
) -> Record:
    """What a member's status shows, in one statement: points_12m, tier_id, the streak of
    `streak_rule_id` (last_day, length), `counted` as ("scope/period", points) pairs for
    `counter_keys`, and the last ten tier `changes` as (from, to, changed_at)."""
    row = await conn.fetchrow(
        f"""
        SELECT ({_POINTS_12M}) AS points_12m,
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


async def user_events(
    conn: Conn, user_id: str, before: tuple[datetime, str] | None, limit: int
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
            limit + 1,
        )
    )


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
    window = """
        ($1::timestamptz IS NULL OR created_at >= $1)
        AND ($2::timestamptz IS NULL OR created_at < $2)
    """
    totals = await conn.fetchrow(
        f"""
        SELECT coalesce(sum(points) FILTER (WHERE {_CREDITED}), 0)::bigint AS points,
               coalesce(sum(points) FILTER (WHERE review = 'PENDING'), 0)::bigint AS in_review,
               coalesce(sum(tier_points) FILTER (WHERE {_CREDITED}), 0)::bigint AS tier_points
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
          AND ($1::timestamptz IS NULL OR recorded_at >= $1)
          AND ($2::timestamptz IS NULL OR recorded_at < $2)
        """,
        start,
        end,
        currency,
    )
    by_rule = await conn.fetch(
        f"SELECT rule_id AS id, sum(points)::bigint AS points FROM awards "
        f"WHERE {_CREDITED} AND {window} GROUP BY 1 ORDER BY 1",
        start,
        end,
    )
    # Awards from before shares were recorded split their extra evenly (see migration 0005).
    by_campaign = await conn.fetch(
        f"""
        SELECT x.id, sum(coalesce(x.share, campaign_points / cardinality(campaign_ids)))::bigint
               AS points
        FROM awards, unnest(campaign_ids, campaign_shares) AS x(id, share)
        WHERE {_CREDITED} AND {window} AND x.id IS NOT NULL GROUP BY 1 ORDER BY 1
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


async def blacklist(conn: Conn) -> list[Record]:
    return list(
        await conn.fetch(
            "SELECT * FROM blacklist WHERE expires_at IS NULL OR expires_at > now() "
            "ORDER BY kind, value LIMIT 10000"
        )
    )


async def invites_today(conn: Conn, referrer_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM referrals "
        "WHERE referrer_id = $1 AND created_at > now() - interval '1 day'",
        referrer_id,
    )
    return count


async def refunds_this_month(conn: Conn, user_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM events WHERE user_id = $1 AND event_type = 'EVENT_TYPE_REFUND' "
        "AND recorded_at > now() - interval '30 days'",
        user_id,
    )
    return count


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
