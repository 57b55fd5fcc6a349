"""Dead letters: work a peer refused for good, recorded after its outcome was settled.

When a peer permanently refuses something a service owed a member (an award credit, a prize),
the service first settles the business outcome (un-counts the award, refunds the draw), then
records a dead letter here so nothing is lost silently. Operators list them, retry them (the
owning service re-runs the work: see each service's `retry` handler) or resolve them with a
note. Each service keeps the table in its own schema (same definition in each migration);
this module is its only SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asyncpg import Record

from services.common.db import Conn
from services.common.metrics import Gauge, Readings
from services.common.peers import PeerError


@dataclass(frozen=True)
class Letter:
    user_id: str
    letter_id: int
    kind: str  # what failed, e.g. RULE_AWARD, LOTTERY_PRIZE
    subject: str  # what it belongs to, e.g. "event:e-1:rule:r-1" or "draw:42"
    reason: str  # the peer's reason
    message: str
    status: str
    attempts: int
    note: str
    created_at: datetime
    updated_at: datetime


def letter_of(row: Record) -> Letter:
    return Letter(**{name: row[name] for name in Letter.__dataclass_fields__})


async def record(conn: Conn, user_id: str, kind: str, subject: str, error: PeerError) -> None:
    """Record (or re-open, counting the attempt) the dead letter of `subject`."""
    await conn.execute(
        """
        INSERT INTO dead_letters AS d (user_id, kind, subject, reason, message)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (user_id, kind, subject) DO UPDATE SET status = 'OPEN',
            reason = EXCLUDED.reason, message = EXCLUDED.message, attempts = d.attempts + 1,
            updated_at = now()
        """,
        user_id,
        kind,
        subject,
        error.reason,
        error.error.message[:1000],
    )


async def listing(
    conn: Conn, status: str | None, after: tuple[datetime, str, int] | None, limit: int
) -> list[Letter]:
    """Letters oldest first (optionally of one status), after a (created_at, user, id) cursor."""
    rows = await conn.fetch(
        """
        SELECT * FROM dead_letters
        WHERE ($1::text IS NULL OR status = $1)
          AND ($2::timestamptz IS NULL OR (created_at, user_id, letter_id) > ($2, $3, $4))
        ORDER BY created_at, user_id, letter_id LIMIT $5
        """,
        status,
        after[0] if after else None,
        after[1] if after else "",
        after[2] if after else 0,
        limit,
    )
    return [letter_of(r) for r in rows]


async def get(conn: Conn, user_id: str, letter_id: int) -> Letter | None:
    row = await conn.fetchrow(
        "SELECT * FROM dead_letters WHERE user_id = $1 AND letter_id = $2", user_id, letter_id
    )
    return None if row is None else letter_of(row)


async def mark(conn: Conn, letter: Letter, status: str, note: str = "") -> Letter:
    row = await conn.fetchrow(
        """
        UPDATE dead_letters SET status = $3, note = CASE WHEN $4 = '' THEN note ELSE $4 END,
                                updated_at = now()
        WHERE user_id = $1 AND letter_id = $2 RETURNING *
        """,
        letter.user_id,
        letter.letter_id,
        status,
        note,
    )
    assert row is not None
    return letter_of(row)


GAUGE = Gauge("points.dead_letters.open", "{letter}", "Dead letters waiting for an operator")


async def open_by_kind(conn: Conn, kinds: Sequence[str]) -> Readings:
    """Open dead letters per kind, for `GAUGE` (what operators alert on); the service's own
    `kinds` are reported at 0 too, so an alert sees a series rather than nothing."""
    rows = await conn.fetch(
        "SELECT kind, count(*) AS n FROM dead_letters WHERE status = 'OPEN' GROUP BY kind"
    )
    counts = {**dict.fromkeys(kinds, 0), **{r["kind"]: r["n"] for r in rows}}
    return [(n, {"points.kind": kind}) for kind, n in counts.items()]
