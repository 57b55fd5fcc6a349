"""Points-as-cash at checkout. The user quotes, applies, confirms and cancels on their own
orders; refunds come from the operator's order system (scope `events:write`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictInt

from gateway.auth import Principal, requires
from gateway.backends import Backends
from gateway.dialect import model_for, to_json
from gateway.routes.common import Client, backends, client, idempotency_key
from loyalty.common.v1 import common_pb2
from loyalty.mall.v1 import mall_pb2 as mpb

router = APIRouter(prefix="/v1/checkout", tags=["checkout"])
Me = Annotated[Principal, Depends(requires())]
Services = Annotated[Backends, Depends(backends)]
Key = Annotated[str, Depends(idempotency_key)]
OrderId = Field(min_length=1, max_length=128)


class Amount(BaseModel):
    amount_minor: StrictInt = Field(gt=0, le=10**15)
    currency: str = Field(pattern=r"^[A-Z]{3}$")

    def money(self) -> common_pb2.Money:
        return common_pb2.Money(amount_minor=self.amount_minor, currency=self.currency)


class QuoteIn(BaseModel):
    order_amount: Amount


class ApplyIn(BaseModel):
    order_id: str = OrderId
    order_amount: Amount
    points: StrictInt = Field(gt=0, le=10**12)


class OrderIn(BaseModel):
    order_id: str = OrderId


class RefundIn(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    order_id: str = OrderId
    refund_amount: Amount


Deduction = model_for(mpb.Deduction.DESCRIPTOR)


class RefundOut(BaseModel):
    deduction: Deduction  # type: ignore[valid-type]
    refunded_points: int


@router.post("/quote", response_model=model_for(mpb.QuoteDeductionResponse.DESCRIPTOR))
async def quote(body: QuoteIn, me: Me, services: Services) -> dict[str, Any]:
    """The most points usable for an order of this amount, and the money they cover."""
    reply = await services.mall.QuoteDeduction(
        mpb.QuoteDeductionRequest(user_id=me.user_id, order_amount=body.order_amount.money()),
        timeout=services.timeout * 2,
    )
    return to_json(reply)


@router.post("/apply", response_model=Deduction)
async def apply(
    body: ApplyIn,
    me: Me,
    key: Key,
    services: Services,
    origin: Annotated[Client, Depends(client)],
) -> dict[str, Any]:
    """Reserve points for the order until it is paid (confirm) or not (cancel)."""
    reply = await services.mall.ApplyDeduction(
        mpb.ApplyDeductionRequest(
            request_id=key,
            user_id=me.user_id,
            order_id=body.order_id,
            order_amount=body.order_amount.money(),
            points=body.points,
            device_id=origin.device_id,
            ip=origin.ip,
        ),
        timeout=services.timeout * 3,
    )
    return to_json(reply.deduction)


@router.post("/confirm", response_model=Deduction)
async def confirm(body: OrderIn, me: Me, key: Key, services: Services) -> dict[str, Any]:
    """The order was paid: spend the reserved points."""
    reply = await services.mall.ConfirmDeduction(
        mpb.ConfirmDeductionRequest(request_id=key, user_id=me.user_id, order_id=body.order_id),
        timeout=services.timeout * 3,
    )
    return to_json(reply.deduction)


@router.post("/cancel", response_model=Deduction)
async def cancel(body: OrderIn, me: Me, key: Key, services: Services) -> dict[str, Any]:
    """The payment failed: release the reserved points."""
    reply = await services.mall.CancelDeduction(
        mpb.CancelDeductionRequest(request_id=key, user_id=me.user_id, order_id=body.order_id),
        timeout=services.timeout * 3,
    )
    return to_json(reply.deduction)


@router.post("/refund", response_model=RefundOut)
async def refund(
    body: RefundIn,
    key: Key,
    services: Services,
    _: Annotated[Principal, Depends(requires("events:write"))],
) -> dict[str, Any]:
    """Part of a paid order was refunded: return points pro rata (order system only)."""
    reply = await services.mall.RefundDeduction(
        mpb.RefundDeductionRequest(
            request_id=key,
            user_id=body.user_id,
            order_id=body.order_id,
            refund_amount=body.refund_amount.money(),
        ),
        timeout=services.timeout * 3,
    )
    return {"deduction": to_json(reply.deduction), "refunded_points": reply.refunded_points}
