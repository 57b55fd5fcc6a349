"""A transactional outbox per service: events written in the transaction of the change they
describe, so an event exists exactly when its change committed.

Each service keeps an `outbox` table in its own schema (the same definition in each
service's migrations), keyed by member ('' for a program-wide event) and partitioned by month
(`keep_months`). Events are written with `emit`, or, where the change itself is one
statement, by an `INSERT INTO outbox` in that statement (a CTE), so the change and its
event cannot part. An event's envelope is stable and
versioned (`envelope`): id, type, occurred_at, member_id, source, sequence, data,
schema_version. The types and their JSON Schemas are listed in `events/` at the repository's
root.

What is ordered: a member's events from one service (`source`). A trigger numbers them 1, 2,
3... per member and service (`member_seq`, no gap: the counter is held until the change
commits and rolls back with it) and stamps `occurred_at` when the event is written, at the end
of its change; so along a member's sequence in one service, occurred_at only grows. Events of
different services are not ordered with each other: a consumer who needs one stream merges
them itself (by occurred_at, after waiting out the delivery delay it accepts).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from asyncpg import Record

from services.common import partitions
from services.common.catalog import SERVICES
from services.common.db import Conn
from services.common.timestamps import rfc3339

SCHEMA_VERSION = 1
# Every event type the suite writes, by the service that owns it; each has a JSON Schema of its
# data in events/schemas/<type>.json (a test keeps the two in step).
EVENT_TYPES = {s.name: s.events for s in SERVICES if s.events}


@dataclass(frozen=True)
class Event:
    type: str  # one of EVENT_TYPES, e.g. "points.credited"
    member_id: str | None  # None for program-wide events (a budget exhausted)
    data: Mapping[str, Any] = field(default_factory=dict)


def columns(events: Sequence[Event]) -> tuple[list[str], list[str], list[str]]:
    """`events` as the (type, member_id, data) arrays an `INSERT INTO outbox ... SELECT * FROM
    unnest($1::text[], $2::text[], $3::jsonb[])` takes, for a statement that writes its events
    beside its change."""
    return (
        [e.type for e in events],
        [e.member_id or "" for e in events],  # '' keys program-wide events
        [json.dumps(e.data, separators=(",", ":"), default=str) for e in events],
    )


async def emit(conn: Conn, events: Sequence[Event]) -> None:
    """Record `events` in the caller's transaction (one statement, however many)."""
    if not events:
        return
    await conn.execute(
        """
        INSERT INTO outbox (type, member_id, data)
        SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])
        """,
        *columns(events),
    )


async def unpublished(conn: Conn, limit: int) -> list[Record]:
    """The oldest events not yet handed on, in the order they were written. A member's events
    are written in the order their changes commit (each change locks the member's rows)."""
    return list(
        await conn.fetch(
            "SELECT * FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1", limit
        )
    )


async def backlog(conn: Conn) -> Record:
    """Events waiting to be handed on (`waiting`), and the oldest one's age in seconds."""
    row = await conn.fetchrow(
        "SELECT count(*) AS waiting, coalesce(extract(epoch FROM now() - min(occurred_at)), 0)"
        "::float8 AS age FROM outbox WHERE published_at IS NULL"
    )
    assert row is not None
    return row


async def mark_published(conn: Conn, seqs: Sequence[int]) -> None:
    """Mark exactly the events handed on. Never "everything up to the last": a sequence number
    is taken when a transaction writes, not when it commits, so an event with a smaller
    number can become visible after a larger one was handed on."""
    await conn.execute(
        # published_at IS NULL lets the partial index of waiting events find them by seq.
        "UPDATE outbox SET published_at = now() WHERE seq = any($1) AND published_at IS NULL",
        list(seqs),
    )


async def keep_months(pool: asyncpg.Pool, retention: timedelta) -> None:
    """The outbox's months: partitions created ahead, and those past `retention` whose events
    were all handed on dropped whole (the webhooks service keeps its own copy for replays).
    Published events in the default partition, if any ever land there, are deleted."""
    await partitions.keep(pool, "outbox", retention, keep_while="p.published_at IS NULL")
    async with pool.acquire() as conn:
        await conn.execute(
            "DELETE FROM outbox_default WHERE published_at < now() - $1::interval", retention
        )


@dataclass(frozen=True)
class Origin:
    """Where an event comes from: the producing service and the member's number there."""

    source: str  # "ledger", "rules" or "mall"
    sequence: int | None  # 1, 2, 3... per member in that service; None before sequences


def envelope_of(
    event_id: str,
    type_: str,
    occurred_at: datetime,
    member_id: str | None,
    data: Any,
    origin: Origin,
) -> dict[str, Any]:
    """The event as delivered: the stable envelope around its data (the one definition; see
    events/schemas/envelope.json)."""
    body = {
        "id": event_id,
        "type": type_,
        "occurred_at": rfc3339(occurred_at),
        "member_id": member_id,
        "source": origin.source,
        "sequence": origin.sequence,
        "schema_version": SCHEMA_VERSION,
        "data": data,
    }
    if not origin.sequence:  # an event written before sequences existed
        del body["sequence"]
    return body


def envelope(row: Record, source: str) -> dict[str, Any]:
    """The envelope of an outbox row of `source`'s outbox."""
    data = json.loads(row["data"]) if isinstance(row["data"], str) else row["data"]
    return envelope_of(
        str(row["event_id"]),
        row["type"],
        row["occurred_at"],
        row["member_id"] or None,
        data,
        Origin(source, row["member_seq"]),
    )
