"""SQL of points-as-cash deductions (see `checkout.py` for the state machine)."""

from __future__ import annotations

from typing import Any

from asyncpg import Record

from services.common.db import Conn


async def find(conn: Conn, user_id: str, order_id: str, *, lock: bool = False) -> Record | None:
    return await conn.fetchrow(
        "SELECT * FROM deductions WHERE user_id = $1 AND order_id = $2"
        + (" FOR UPDATE" if lock else ""),
        user_id,
        order_id,
    )


async def claim(conn: Conn, values: dict[str, Any], hold_seconds: int) -> Record | None:
    """Claim the order for this request (PENDING, with its hold deadline by database time).
    A FAILED claim of another request is taken over; anything else is left alone (None)."""
    return await conn.fetchrow(
        """
        INSERT INTO deductions (user_id, order_id, request_id, payload_sha256, points,
                                order_minor, currency, covered_minor, hold_request_id,
                                hold_deadline, status)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(secs => $10),
                'PENDING')
        ON CONFLICT (user_id, order_id) DO UPDATE SET
            request_id = EXCLUDED.request_id, payload_sha256 = EXCLUDED.payload_sha256,
            points = EXCLUDED.points, order_minor = EXCLUDED.order_minor,
            currency = EXCLUDED.currency, covered_minor = EXCLUDED.covered_minor,
            hold_request_id = EXCLUDED.hold_request_id, hold_deadline = EXCLUDED.hold_deadline,
            status = 'PENDING', failure_reason = NULL
        WHERE deductions.status = 'FAILED' AND deductions.request_id <> EXCLUDED.request_id
        RETURNING *
        """,
        values["user_id"],
        values["order_id"],
        values["request_id"],
        values["payload_sha256"],
        values["points"],
        values["order_minor"],
        values["currency"],
        values["covered_minor"],
        values["hold_request_id"],
        float(hold_seconds),
    )


async def move(
    conn: Conn, row: Record, from_status: str, to_status: str, **changes: object
) -> Record | None:
    """Move the deduction on if it is still in `from_status` (None when another call did)."""
    columns = ["status", *changes]
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=4))
    return await conn.fetchrow(
        f"UPDATE deductions SET {assignments} "
        "WHERE user_id = $1 AND order_id = $2 AND status = $3 RETURNING *",
        row["user_id"],
        row["order_id"],
        from_status,
        to_status,
        *changes.values(),
    )


async def find_refund(conn: Conn, user_id: str, order_id: str, request_id: str) -> Record | None:
    return await conn.fetchrow(
        "SELECT amount_minor, points FROM deduction_refunds "
        "WHERE user_id = $1 AND order_id = $2 AND request_id = $3",
        user_id,
        order_id,
        request_id,
    )


async def record_refund(
    conn: Conn, row: Record, request_id: str, amount_minor: int, points: int
) -> Record:
    """Record a refund and add it to the deduction's totals (the row is locked by the caller)."""
    await conn.execute(
        """
        INSERT INTO deduction_refunds (user_id, order_id, request_id, amount_minor, points)
        VALUES ($1, $2, $3, $4, $5)
        """,
        row["user_id"],
        row["order_id"],
        request_id,
        amount_minor,
        points,
    )
    updated = await conn.fetchrow(
        """
        UPDATE deductions SET refunded_points = refunded_points + $3,
                              refunded_minor = refunded_minor + $4
        WHERE user_id = $1 AND order_id = $2 RETURNING *
        """,
        row["user_id"],
        row["order_id"],
        points,
        amount_minor,
    )
    assert updated is not None
    return updated
