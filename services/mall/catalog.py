"""Catalog items: validation, and the per-user limit's period."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from loyalty.mall.v1 import mall_pb2 as pb
from services.common.errors import FieldViolation, InvalidArgument
from services.common.validation import storable

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def valid_item_id(value: str) -> bool:
    return bool(_ID.match(value))


def check_item(item: pb.Item) -> None:
    bad: list[FieldViolation] = []

    def fail(field: str, description: str) -> None:
        bad.append(FieldViolation(f"item.{field}", description))

    if not valid_item_id(item.item_id):
        fail("item_id", "lower-case letters, digits, '_.-', at most 64")
    if item.type == pb.ITEM_TYPE_UNSPECIFIED or item.type not in pb.ItemType.values():
        fail("type", "must be PHYSICAL, VIRTUAL, COUPON or POINTS_PLUS_CASH")
    if not storable(item.title, 200):
        fail("title", "is required (at most 200 characters, no NUL)")
    if not storable(item.description, 4000, required=False):
        fail("description", "at most 4000 characters, no NUL")
    if not storable(item.image_url, 2000, required=False):
        fail("image_url", "at most 2000 characters, no NUL")
    if not 0 < item.points_price <= 10**9:
        fail("points_price", "must be > 0 and <= 1000000000")
    if item.stock < 0:
        fail("stock", "must be >= 0")
    if item.per_user_limit < 0:
        fail("per_user_limit", "must be >= 0")
    if item.per_user_limit and item.limit_period == pb.LIMIT_PERIOD_UNSPECIFIED:
        fail("limit_period", "is required with a per_user_limit")
    if item.type == pb.ITEM_TYPE_COUPON and item.coupon_value.amount_minor <= 0:
        fail("coupon_value", "a coupon needs a value")
    if item.type == pb.ITEM_TYPE_POINTS_PLUS_CASH and (
        item.cash_price.amount_minor <= 0 or len(item.cash_price.currency) != 3
    ):
        fail("cash_price", "points-plus-cash items need a cash price")
    if any(not _ID.match(t) for t in item.eligible_tier_ids):
        fail("eligible_tier_ids", "must be tier ids")
    if item.code_valid_days < 0:
        fail("code_valid_days", "must be >= 0")
    if (
        item.HasField("available_from")
        and item.HasField("available_until")
        and item.available_until.ToDatetime() <= item.available_from.ToDatetime()
    ):
        fail("available_until", "must be after available_from")
    if bad:
        raise InvalidArgument.fields(bad)


def period_start(period: int, now: datetime, zone: ZoneInfo) -> datetime | None:
    """Start of the current limit period (None: since ever)."""
    local = now.astimezone(zone)
    if period == pb.LIMIT_PERIOD_DAY:
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == pb.LIMIT_PERIOD_MONTH:
        return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return None


SHIPPED = ("ITEM_TYPE_PHYSICAL", "ITEM_TYPE_POINTS_PLUS_CASH")  # item types that need an address
