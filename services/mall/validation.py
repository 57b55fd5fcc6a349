"""Request validation for the mall's RPCs (the chassis' Checker: every problem at once)."""

from __future__ import annotations

from typing import Any

from loyalty.mall.v1 import mall_pb2 as pb
from services.common.validation import MAX_MONEY_MINOR, Checker
from services.mall import catalog


def check_order(
    c: Checker,
    request: Any,
    *,
    amount_field: str = "order_amount",
    currency: str | None = None,
) -> None:
    c.user_id(request.user_id)
    if hasattr(request, "order_id"):
        c.identifier("order_id", request.order_id, 128)
    if hasattr(request, "request_id"):
        c.request_id(request.request_id)
    if amount_field:
        money = getattr(request, amount_field)
        c.require(
            0 < money.amount_minor <= MAX_MONEY_MINOR,
            f"{amount_field}.amount_minor",
            f"must be > 0 and <= {MAX_MONEY_MINOR}",
        )
        if currency is not None:
            c.require(money.currency == currency, f"{amount_field}.currency", f"must be {currency}")


def check_origin(c: Checker, request: Any) -> None:
    """The device and IP a spend came from, passed on to the risk check."""
    c.identifier("device_id", request.device_id, 128, required=False)
    c.identifier("ip", request.ip, 128, required=False)


def check_lottery_id(lottery_id: str) -> None:
    c = Checker()
    c.require(
        catalog.valid_item_id(lottery_id),
        "lottery_id",
        "is required: lower-case letters, digits, '_.-'",
    )
    c.done()


def check_redeem(request: pb.RedeemRequest) -> None:
    c = Checker()
    c.request_id(request.request_id)
    c.user_id(request.user_id)
    c.require(
        catalog.valid_item_id(request.item_id),
        "item_id",
        "is required: lower-case letters, digits, '_.-'",
    )
    c.require(1 <= request.quantity <= 100, "quantity", "must be between 1 and 100")
    c.text("shipping_address", request.shipping_address, 500, required=False)
    check_origin(c, request)
    c.done()
