"""SQL of `points import balances` (services/balance_import.py): one chunk of the file per
transaction, streamed with COPY into a temporary table and applied by the migration's
`import_balances` function (0014_import_balances.sql)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from services.common.db import Conn

# (line, user_id, points, expires_at or None, reference, request_id, payload_sha256)
StagedRow = tuple[int, str, int, datetime | None, str, str, bytes]
STAGED_COLUMNS = (
    "line",
    "user_id",
    "points",
    "expires_at",
    "reference",
    "request_id",
    "payload_sha256",
)


async def database_now(conn: Conn) -> datetime:
    now: datetime = await conn.fetchval("SELECT now()")
    return now


async def apply_chunk(
    conn: Conn, import_id: str, source: str, default_expiry: datetime, rows: Sequence[StagedRow]
) -> list[asyncpg.Record]:
    """Inside the caller's transaction: stage `rows` and apply them; the rows not applied come
    back as (line, outcome 'already' | 'refused', reason)."""
    await conn.execute(
        """
        CREATE TEMPORARY TABLE import_rows (
            line bigint, user_id text, points bigint, expires_at timestamptz,
            reference text, request_id text, payload_sha256 bytea
        ) ON COMMIT DROP
        """
    )
    await conn.copy_records_to_table("import_rows", records=rows, columns=STAGED_COLUMNS)
    return list(
        await conn.fetch(
            "SELECT line, outcome, reason FROM import_balances($1, $2, $3)",
            import_id,
            source,
            default_expiry,
        )
    )
