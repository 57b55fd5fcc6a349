"""Catalog items: validation, and the per-user limit's period."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from loyalty.mall.v1 import mall_pb2 as pb
from services.common.validation import Checker

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def valid_item_id(value: str) -> bool:
    return bool(_ID.match(value))


def check_item(item: pb.Item) -> None:
    c = Checker("item")
    c.require(
        valid_item_id(item.item_id), "item_id", "lower-case letters, digits, '_.-', at most 64"
    )
    c.require(
        item.type != pb.ITEM_TYPE_UNSPECIFIED,
        "type",
        "must be PHYSICAL, VIRTUAL, COUPON or POINTS_PLUS_CASH",
    )
    c.text("title", item.title, 200)
    c.text("description", item.description, 4000, required=False)
    c.text("image_url", item.image_url, 2000, required=False)
    c.require(0 < item.points_price <= 10**9, "points_price", "must be > 0 and <= 1000000000")
    c.require(item.stock >= 0, "stock", "must be >= 0")
    c.require(item.per_user_limit >= 0, "per_user_limit", "must be >= 0")
    c.require(
        not item.per_user_limit or item.limit_period != pb.LIMIT_PERIOD_UNSPECIFIED,
        "limit_period",
        "is required with a per_user_limit",
    )
    c.require(
        item.type != pb.ITEM_TYPE_COUPON or item.coupon_value.amount_minor > 0,
        "coupon_value",
        "a coupon needs a value",
    )
    c.require(
        item.type != pb.ITEM_TYPE_POINTS_PLUS_CASH
        or (item.cash_price.amount_minor > 0 and len(item.cash_price.currency) == 3),
        "cash_price",
        "points-plus-cash items need a cash price",
    )
    c.require(
        all(_ID.match(t) for t in item.eligible_tier_ids), "eligible_tier_ids", "must be tier ids"
    )
    c.require(item.code_valid_days >= 0, "code_valid_days", "must be >= 0")
    c.require(
        not (item.HasField("available_from") and item.HasField("available_until"))
        or item.available_until.ToDatetime() > item.available_from.ToDatetime(),
        "available_until",
        "must be after available_from",
    )
    c.done()


def period_start(period: int, now: datetime, zone: ZoneInfo) -> datetime | None:
    """Start of the current limit period (None: since ever)."""
    local = now.astimezone(zone)
    if period == pb.LIMIT_PERIOD_DAY:
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == pb.LIMIT_PERIOD_MONTH:
        return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return None


SHIPPED = ("ITEM_TYPE_PHYSICAL", "ITEM_TYPE_POINTS_PLUS_CASH")  # item types that need an address
