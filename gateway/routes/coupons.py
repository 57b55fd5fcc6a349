"""Coupons at a merchant's checkout (scope `events:write`: the operator's order system):
validate a member's coupon for an order, then use it, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from gateway.auth import Principal, requires
from gateway.backends import Backends
from gateway.dialect import enumerated, short_name
from gateway.routes.checkout import Amount
from gateway.routes.common import backends, idempotency_key
from loyalty.mall.v1 import mall_pb2 as mpb

router = APIRouter(prefix="/v1/coupons", tags=["coupons"])
Services = Annotated[Backends, Depends(backends)]
OrderSystem = Annotated[Principal, Depends(requires("events:write"))]


class CouponOrder(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    code: str = Field(min_length=1, max_length=64)
    order_id: str = Field(min_length=1, max_length=128)
    order_amount: Amount


class Coupon(BaseModel):
    code: str
    user_id: str
    value_minor: int
    min_spend_minor: int
    currency: str
    state: Annotated[str, enumerated(mpb.CouponState)]
    expires_at: datetime | None
    used_order_id: str

    @classmethod
    def of(cls, coupon: mpb.Coupon) -> Coupon:
        return cls(
            code=coupon.code,
            user_id=coupon.user_id,
            value_minor=coupon.value.amount_minor,
            min_spend_minor=coupon.min_spend.amount_minor,
            currency=coupon.value.currency,
            state=short_name(mpb.CouponState, coupon.state),
            expires_at=(
                coupon.expire_time.ToDatetime(tzinfo=UTC)
                if coupon.HasField("expire_time")
                else None
            ),
            used_order_id=coupon.used_order_id,
        )


class CouponCheck(BaseModel):
    valid: bool
    reason: str = Field(description="why not, e.g. COUPON_EXPIRED or BELOW_MIN_SPEND ('' if valid)")
    discount_minor: int
    coupon: Coupon


class CouponUse(BaseModel):
    discount_minor: int
    coupon: Coupon


@router.post("/validate", response_model=CouponCheck)
async def validate(body: CouponOrder, _: OrderSystem, services: Services) -> CouponCheck:
    """Whether the member's coupon applies to this order, and the discount it gives."""
    reply = await services.mall.ValidateCoupon(
        mpb.ValidateCouponRequest(
            user_id=body.user_id, code=body.code, order_amount=body.order_amount.money()
        ),
        timeout=services.timeout,
    )
    return CouponCheck(
        valid=reply.valid,
        reason=reply.reason,
        discount_minor=reply.discount.amount_minor,
        coupon=Coupon.of(reply.coupon),
    )


@router.post("/use", response_model=CouponUse)
async def use(
    body: CouponOrder,
    _: OrderSystem,
    key: Annotated[str, Depends(idempotency_key)],
    services: Services,
) -> CouponUse:
    """Use the coupon for the order: once. Using it again for the same order answers the same;
    for another order, 409 COUPON_ALREADY_USED."""
    reply = await services.mall.UseCoupon(
        mpb.UseCouponRequest(
            request_id=key,
            user_id=body.user_id,
            code=body.code,
            order_id=body.order_id,
            order_amount=body.order_amount.money(),
        ),
        timeout=services.timeout,
    )
    return CouponUse(discount_minor=reply.discount.amount_minor, coupon=Coupon.of(reply.coupon))
