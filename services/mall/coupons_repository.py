"""SQL of coupons (see `coupons.py` for their rules). Functions run in the caller's
transaction."""

from __future__ import annotations

from asyncpg import Record

from loyalty.mall.v1 import mall_pb2 as pb
from services.common.db import Conn


async def issue(conn: Conn, redemption: Record, item: pb.Item) -> None:
    await conn.execute(
        """
        INSERT INTO coupons (user_id, code, redemption_id, value_minor, min_spend_minor,
                             currency, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        redemption["user_id"],
        redemption["code"],
        redemption["redemption_id"],
        item.coupon_value.amount_minor,
        item.coupon_min_spend.amount_minor,
        item.coupon_value.currency,
        redemption["code_expires_at"],
    )


async def issue_prize(conn: Conn, user_id: str, code: str, prize: pb.Prize) -> None:
    """A coupon won in a lottery draw (no redemption behind it)."""
    await conn.execute(
        """
        INSERT INTO coupons (user_id, code, value_minor, min_spend_minor, currency)
        VALUES ($1, $2, $3, $4, $5)
        """,
        user_id,
        code,
        prize.coupon_value.amount_minor,
        prize.coupon_min_spend.amount_minor,
        prize.coupon_value.currency,
    )


async def revoke(conn: Conn, user_id: str, redemption_id: int) -> None:
    await conn.execute(
        "UPDATE coupons SET state = 'REVOKED' "
        "WHERE user_id = $1 AND redemption_id = $2 AND state = 'ISSUED'",
        user_id,
        redemption_id,
    )


async def revoke_unless_used(conn: Conn, user_id: str, redemption_id: int) -> bool:
    """Revoke the redemption's coupon (if it has one); False when it was already used."""
    found = await conn.fetchval(
        "SELECT state FROM coupons WHERE user_id = $1 AND redemption_id = $2 FOR UPDATE",
        user_id,
        redemption_id,
    )
    if found == "USED":
        return False
    await revoke(conn, user_id, redemption_id)
    return True


async def reinstate(conn: Conn, user_id: str, redemption_id: int) -> None:
    """Undo a revocation whose refund did not go through."""
    await conn.execute(
        "UPDATE coupons SET state = 'ISSUED' "
        "WHERE user_id = $1 AND redemption_id = $2 AND state = 'REVOKED'",
        user_id,
        redemption_id,
    )


async def find(conn: Conn, user_id: str, code: str, lock: bool = False) -> Record | None:
    return await conn.fetchrow(
        "SELECT *, now() AS as_of FROM coupons WHERE user_id = $1 AND code = $2"
        + (" FOR UPDATE" if lock else ""),
        user_id,
        code,
    )


async def mark_used(conn: Conn, user_id: str, code: str, order_id: str) -> Record:
    used = await conn.fetchrow(
        """
        UPDATE coupons SET state = 'USED', used_order_id = $3, used_at = now()
        WHERE user_id = $1 AND code = $2 RETURNING *, now() AS as_of
        """,
        user_id,
        code,
        order_id,
    )
    assert used is not None
    return used
