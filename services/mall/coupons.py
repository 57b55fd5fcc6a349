"""Coupons: issued with a redemption, validated and used by the operator's order system."""

from __future__ import annotations

from asyncpg import Record

from loyalty.common.v1 import common_pb2
from loyalty.mall.v1 import mall_pb2 as pb
from services.common.db import Conn
from services.common.errors import AlreadyExists, FailedPrecondition, NotFound
from services.common.timestamps import to_timestamp


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


async def find(conn: Conn, user_id: str, code: str, lock: bool = False) -> Record:
    row = await conn.fetchrow(
        "SELECT *, now() AS as_of FROM coupons WHERE user_id = $1 AND code = $2"
        + (" FOR UPDATE" if lock else ""),
        user_id,
        code,
    )
    if row is None:  # someone else's code is "not found" too: never reveal it exists
        raise NotFound("COUPON_NOT_FOUND", "no such coupon for this user", {"code": code})
    return row


def state(row: Record) -> str:
    expired = row["expires_at"] is not None and row["expires_at"] <= row["as_of"]
    return "EXPIRED" if row["state"] == "ISSUED" and expired else str(row["state"])


def check(row: Record, order: common_pb2.Money) -> tuple[str, int]:
    """Why the coupon cannot be used for the order ('' if it can), and its discount."""
    current = state(row)
    if current != "ISSUED":
        return f"COUPON_{current}", 0
    if order.currency != row["currency"]:
        return "CURRENCY_MISMATCH", 0
    if order.amount_minor < row["min_spend_minor"]:
        return "BELOW_MIN_SPEND", 0
    return "", min(row["value_minor"], order.amount_minor)


def message(row: Record) -> pb.Coupon:
    coupon = pb.Coupon(
        code=row["code"],
        user_id=row["user_id"],
        value=common_pb2.Money(amount_minor=row["value_minor"], currency=row["currency"]),
        min_spend=common_pb2.Money(amount_minor=row["min_spend_minor"], currency=row["currency"]),
        state=pb.CouponState.Value(f"COUPON_STATE_{state(row)}"),
        used_order_id=row["used_order_id"] or "",
    )
    if row["expires_at"] is not None:
        coupon.expire_time.CopyFrom(to_timestamp(row["expires_at"]))
    return coupon


async def use(
    conn: Conn, user_id: str, code: str, order_id: str, order: common_pb2.Money
) -> tuple[Record, int]:
    """Mark the coupon used for the order (in the caller's transaction)."""
    row = await find(conn, user_id, code, lock=True)
    if row["state"] == "USED":
        if row["used_order_id"] == order_id:
            return row, min(row["value_minor"], order.amount_minor)  # a replay
        raise AlreadyExists(
            "COUPON_ALREADY_USED", "the coupon was used for another order", {"code": code}
        )
    reason, discount = check(row, order)
    if reason:
        raise FailedPrecondition(reason, f"the coupon cannot be used: {reason}", {"code": code})
    used: Record | None = await conn.fetchrow(
        """
        UPDATE coupons SET state = 'USED', used_order_id = $3, used_at = now()
        WHERE user_id = $1 AND code = $2 RETURNING *, now() AS as_of
        """,
        user_id,
        code,
        order_id,
    )
    assert used is not None
    return used, discount
