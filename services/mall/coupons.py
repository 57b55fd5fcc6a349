"""Coupons: issued with a redemption or won in a draw, validated and used by the operator's
order system (their SQL is in `coupons_repository.py`)."""

from __future__ import annotations

from asyncpg import Record

from loyalty.common.v1 import common_pb2
from loyalty.mall.v1 import mall_pb2 as pb
from services.common.db import Conn
from services.common.errors import AlreadyExists, FailedPrecondition, NotFound
from services.common.timestamps import to_timestamp
from services.mall import coupons_repository as repo


async def find(conn: Conn, user_id: str, code: str, lock: bool = False) -> Record:
    row = await repo.find(conn, user_id, code, lock)
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
    return await repo.mark_used(conn, user_id, code, order_id), discount
