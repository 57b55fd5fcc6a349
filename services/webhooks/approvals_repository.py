"""The approval queue's SQL (services/webhooks/approvals.py)."""

from __future__ import annotations

from asyncpg import Record

from services.common.db import Conn

ASKED = (
    "author, author_roles, action, target, request_json, request_key, reason, detail_json, needs"
)


async def ask(conn: Conn, fields: dict[str, object]) -> Record | None:
    """The new approval, or the one asked for before under the same author and key (None
    when that one committed while this statement waited: read it again)."""
    values = [fields[name.strip()] for name in ASKED.split(",")]
    row = await conn.fetchrow(
        f"""
        WITH new AS (
            INSERT INTO approvals ({ASKED}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (author, request_key) DO NOTHING RETURNING *
        )
        SELECT * FROM new
        UNION ALL
        SELECT * FROM approvals WHERE author = $1 AND request_key = $6
        LIMIT 1
        """,
        *values,
    )
    return row


async def asked(conn: Conn, author: str, request_key: str) -> Record | None:
    return await conn.fetchrow(
        "SELECT * FROM approvals WHERE author = $1 AND request_key = $2", author, request_key
    )


async def get(conn: Conn, approval_id: int) -> Record | None:
    return await conn.fetchrow("SELECT * FROM approvals WHERE approval_id = $1", approval_id)


async def page(conn: Conn, status: str, before: int | None, fetch: int) -> list[Record]:
    return list(
        await conn.fetch(
            """
            SELECT * FROM approvals
            WHERE ($1 = '' OR status = $1)
              AND approval_id < coalesce($2::bigint, 9223372036854775807)
            ORDER BY approval_id DESC LIMIT $3
            """,
            status,
            before,
            fetch,
        )
    )


async def decide(conn: Conn, approval_id: int, status: str, decided_by: str) -> Record | None:
    """Moves a PENDING approval to `status`; None when it was not pending."""
    return await conn.fetchrow(
        """
        UPDATE approvals SET status = $2, decided_by = $3, decided_at = now()
        WHERE approval_id = $1 AND status = 'PENDING' RETURNING *
        """,
        approval_id,
        status,
        decided_by,
    )


async def finish(
    conn: Conn, approval_id: int, result_status: int, result_json: str
) -> Record | None:
    """Records the answer of an APPROVED approval's change (once); None when not APPROVED."""
    return await conn.fetchrow(
        """
        UPDATE approvals SET status = 'DONE', result_status = $2, result_json = $3
        WHERE approval_id = $1 AND status = 'APPROVED' RETURNING *
        """,
        approval_id,
        result_status,
        result_json,
    )
