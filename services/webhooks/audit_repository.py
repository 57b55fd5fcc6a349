"""The audit log's SQL (services/webhooks/audit.py). Functions run in the caller's
transaction where they write."""

from __future__ import annotations

from datetime import datetime

from asyncpg import Record

from services.common.db import Conn, lock_for_transaction

COLUMNS = (
    "seq, entry_id, actor, roles, action, target, request_json, response_json, status, ip, "
    "user_agent, recorded_at, prev_hash, hash"
)


async def lock(conn: Conn) -> None:
    """Serialise appends: each entry's hash covers the one before."""
    await lock_for_transaction(conn, "points.audit_log")


async def find(conn: Conn, entry_id: str) -> Record | None:
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM audit_log WHERE entry_id = $1", entry_id)


async def last(conn: Conn) -> Record | None:
    """The newest entry's seq and hash, and the time now."""
    return await conn.fetchrow(
        "SELECT (SELECT max(seq) FROM audit_log) AS seq, now() AS now, "
        "(SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1) AS hash"
    )


async def append(conn: Conn, entry: dict[str, object]) -> Record:
    row = await conn.fetchrow(
        f"INSERT INTO audit_log ({COLUMNS}) VALUES "
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
        f"RETURNING {COLUMNS}",
        *(entry[name.strip()] for name in COLUMNS.split(",")),
    )
    assert row is not None
    return row


async def page(
    conn: Conn,
    actor: str,
    text: str,
    span: tuple[datetime | None, datetime | None],
    before: int | None,
    fetch: int,
) -> list[Record]:
    """Up to `fetch` entries, newest first, below seq `before`."""
    return list(
        await conn.fetch(
            f"""
            SELECT {COLUMNS} FROM audit_log
            WHERE seq < coalesce($1::bigint, 9223372036854775807)
              AND ($2 = '' OR actor = $2)
              AND ($3 = '' OR strpos(action || ' ' || target || ' ' || request_json || ' '
                                     || response_json, $3) > 0)
              AND recorded_at >= coalesce($4::timestamptz, '-infinity')
              AND recorded_at < coalesce($5::timestamptz, 'infinity')
            ORDER BY seq DESC LIMIT $6
            """,
            before,
            actor,
            text,
            span[0],
            span[1],
            fetch,
        )
    )


async def every(conn: Conn, after: int, fetch: int) -> list[Record]:
    """Up to `fetch` entries after seq `after`, oldest first (export and verification)."""
    return list(
        await conn.fetch(
            f"SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2", after, fetch
        )
    )
