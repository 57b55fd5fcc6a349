"""SQL of holds: points set aside for a later capture or release, and the holds past their
deadline. Functions run inside the caller's transaction."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.common.db import Conn

Record = asyncpg.Record


async def due_holds(conn: Conn, limit: int) -> list[Record]:
    return await conn.fetch(
        "SELECT user_id, hold_id FROM holds WHERE status = 'ACTIVE' AND deadline_at <= now() "
        "ORDER BY deadline_at LIMIT $1",
        limit,
    )


async def get_hold(conn: Conn, user_id: str, hold_id: int) -> Record | None:
    return await conn.fetchrow(
        "SELECT *, deadline_at <= now() AS overdue FROM holds WHERE user_id = $1 AND hold_id = $2",
        user_id,
        hold_id,
    )


async def next_hold_id(conn: Conn) -> int:
    """Reserve a hold id first, so the HOLD transfer can name its hold when inserted."""
    hold_id: int = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('holds', 'hold_id'))")
    return hold_id


async def insert_hold(
    conn: Conn,
    user_id: str,
    hold_id: int,
    transfer_id: int,
    amount: int,
    deadline: datetime,
) -> Record:
    row = await conn.fetchrow(
        """
        INSERT INTO holds (user_id, hold_id, hold_transfer_id, amount, deadline_at)
        VALUES ($1, $2, $3, $4, $5) RETURNING *, false AS overdue
        """,
        user_id,
        hold_id,
        transfer_id,
        amount,
        deadline,
    )
    assert row is not None
    return row


async def resolve_hold(
    conn: Conn, user_id: str, hold_id: int, status: str, captured: int, released: int
) -> Record:
    row = await conn.fetchrow(
        """
        UPDATE holds SET status = $3, captured = $4, released = $5, resolved_at = now()
        WHERE user_id = $1 AND hold_id = $2 AND status = 'ACTIVE'
        RETURNING *, false AS overdue
        """,
        user_id,
        hold_id,
        status,
        captured,
        released,
    )
    assert row is not None, "hold must be active and locked through its member"
    return row


async def overdue_holds(conn: Conn, user_id: str) -> list[Record]:
    return list(
        await conn.fetch(
            "SELECT * FROM holds WHERE user_id = $1 AND status = 'ACTIVE' AND deadline_at <= now()",
            user_id,
        )
    )
