"""Calls the mall's tests share: an item to redeem, its stock, money in yuan."""

from __future__ import annotations

import uuid
from typing import TypeAlias

from loyalty.common.v1 import common_pb2
from loyalty.mall.v1 import mall_pb2 as pb
from loyalty.mall.v1 import mall_pb2_grpc

MallStub: TypeAlias = "mall_pb2_grpc.MallServiceAsyncStub"


async def item(mall: MallStub, **fields: object) -> str:
    item_id = f"item-{uuid.uuid4().hex[:10]}"
    values: dict[str, object] = {
        "type": pb.ITEM_TYPE_COUPON,
        "title": "20 yuan off",
        "points_price": 100,
        "stock": 5,
        "enabled": True,
        "coupon_value": common_pb2.Money(amount_minor=2000, currency="CNY"),
        "code_valid_days": 30,
        **fields,
    }
    await mall.UpsertItem(pb.UpsertItemRequest(item=pb.Item(item_id=item_id, **values)))  # type: ignore[arg-type]
    return item_id


async def stock_of(mall: MallStub, item_id: str) -> int:
    page = await mall.ListItems(pb.ListItemsRequest(page_size=200))
    while True:
        for found in page.items:
            if found.item_id == item_id:
                return found.stock
        if not page.next_page_token:
            raise AssertionError(f"{item_id} not listed")
        page = await mall.ListItems(
            pb.ListItemsRequest(page_size=200, page_token=page.next_page_token)
        )


def cny(minor: int) -> common_pb2.Money:
    return common_pb2.Money(amount_minor=minor, currency="CNY")
