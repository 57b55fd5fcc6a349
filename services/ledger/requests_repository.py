"""SQL of the ledger's request log: each mutation's request id, claimed before it applies and
answered from after (exactly once). Functions run inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
from google.protobuf.message import Message

from services.common import outbox
from services.common.db import Conn

Record = asyncpg.Record
RequestKey = tuple[str, str]  # (user_id, request_id)


async def find_request(conn: Conn, user_id: str, request_id: str) -> Record | None:
    return await conn.fetchrow(
        "SELECT request_id, method, payload_sha256, response, error FROM requests "
        "WHERE user_id = $1 AND request_id = $2",
        user_id,
        request_id,
    )


async def lock_and_claim(
    conn: Conn, claims: Sequence[tuple[str, str, str, bytes]]
) -> tuple[datetime, set[RequestKey]]:
    """Lock the members of (user_id, request_id, method, payload_sha256) claims (created if
    missing, in user-id order, so batches never deadlock), then claim the request keys; return
    database time and the keys that were new.

    A key claimed by a transaction still in flight makes this wait for it, so a concurrent
    duplicate sees the committed outcome afterwards.
    """
    rows = await conn.fetch(
        """
        WITH locked AS (
            INSERT INTO members AS m (user_id)
            SELECT DISTINCT unnest($1::text[]) ORDER BY 1
            ON CONFLICT (user_id) DO UPDATE SET updated_at = m.updated_at
            RETURNING 1
        ), claimed AS (
            -- Reading `locked` makes the claims wait for the member locks.
            INSERT INTO requests (user_id, request_id, method, payload_sha256)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
            WHERE (SELECT count(*) FROM locked) > 0
            ON CONFLICT (user_id, request_id) DO NOTHING
            RETURNING user_id, request_id
        )
        SELECT now() AS now, c.user_id, c.request_id
        FROM (SELECT 1) AS one LEFT JOIN claimed c ON true
        """,
        [c[0] for c in claims],
        [c[1] for c in claims],
        [c[2] for c in claims],
        [c[3] for c in claims],
    )
    fresh = {(r["user_id"], r["request_id"]) for r in rows if r["user_id"] is not None}
    return rows[0]["now"], fresh


async def find_requests(conn: Conn, keys: Sequence[RequestKey]) -> dict[RequestKey, Record]:
    rows = await conn.fetch(
        """
        SELECT r.user_id, r.request_id, r.method, r.payload_sha256, r.response, r.error
        FROM unnest($1::text[], $2::text[]) AS k(user_id, request_id)
        JOIN requests r USING (user_id, request_id)
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["user_id"], r["request_id"]): r for r in rows}


async def finish_requests(
    conn: Conn,
    outcomes: Sequence[tuple[str, str, bytes | None, str | None]],
    events: Sequence[outbox.Event],
    changed_users: Sequence[str],
) -> None:
    """Store each claimed request's outcome (response or JSON error) and the events of the
    applied ones; tell watchers of the changed members on commit."""
    await conn.execute(
        """
        WITH outcome AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::jsonb[])
                AS o(user_id, request_id, response, error)
        ), stored AS (
            UPDATE requests r SET response = o.response, error = o.error
            FROM outcome o WHERE r.user_id = o.user_id AND r.request_id = o.request_id
        ), announced AS (
            INSERT INTO outbox (type, member_id, data)
            SELECT * FROM unnest($6::text[], $7::text[], $8::jsonb[])
        )
        SELECT count(pg_notify('ledger_balance', u)) FROM unnest($5::text[]) AS u
        """,
        [o[0] for o in outcomes],
        [o[1] for o in outcomes],
        [o[2] for o in outcomes],
        [o[3] for o in outcomes],
        list(changed_users),
        *outbox.columns(events),
    )


async def record_response(
    conn: Conn,
    user_id: str,
    request_id: str,
    method: str,
    payload_sha256: bytes,
    response: Message,
) -> None:
    """Record a request that ran outside a batch (an expiry run) with its response."""
    await conn.execute(
        """
        INSERT INTO requests (user_id, request_id, method, payload_sha256, response)
        VALUES ($1, $2, $3, $4, $5)
        """,
        user_id,
        request_id,
        method,
        payload_sha256,
        response.SerializeToString(),
    )
