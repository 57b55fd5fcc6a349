"""The points mall for users: browse the catalog, redeem, see and cancel redemptions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from gateway.auth import Principal, requires
from gateway.backends import Backends
from gateway.dialect import model_for, to_json
from gateway.models import Catalog, Item, RedeemIn, Redemption, Redemptions
from gateway.routes.common import (
    PAGE_SIZE,
    Client,
    PageSize,
    PageToken,
    backends,
    client,
    idempotency_key,
)
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.mall.v1 import mall_pb2 as mpb

router = APIRouter(prefix="/v1", tags=["mall"])
Me = Annotated[Principal, Depends(requires())]
Services = Annotated[Backends, Depends(backends)]
RedemptionId = Annotated[str, Path(pattern=r"^[0-9]{1,18}$")]
# Redeeming runs a saga across services; give it longer than a single backend call.
SAGA_TIMEOUT_FACTOR = 5


@router.get("/catalog", response_model=Catalog)
async def catalog(
    me: Me,
    services: Services,
    type: Annotated[
        Literal["PHYSICAL", "VIRTUAL", "COUPON", "POINTS_PLUS_CASH"] | None, Query()
    ] = None,
    affordable: bool = False,
    page_size: PageSize = PAGE_SIZE,
    page_token: PageToken = "",
) -> Catalog:
    """Items available now; `affordable=true` keeps those the user's points can pay for."""
    request = mpb.ListItemsRequest(page_size=page_size, page_token=page_token)
    if type is not None:
        request.type = mpb.ItemType.Value(f"ITEM_TYPE_{type}")
    if affordable:
        reply = await services.ledger.GetBalance(
            lpb.GetBalanceRequest(user_id=me.user_id), timeout=services.timeout
        )
        # A user with no points can afford nothing; 0 would mean "no filter" to the mall.
        request.max_points_price = reply.balance.available or -1
        if request.max_points_price < 0:
            return Catalog(items=[], next_page_token="")
    found = await services.mall.ListItems(request, timeout=services.timeout)
    return Catalog(items=[Item.of(i) for i in found.items], next_page_token=found.next_page_token)


@router.post("/me/redemptions", response_model=Redemption)
async def redeem(
    body: RedeemIn,
    me: Me,
    services: Services,
    request: Request,
    key: Annotated[str, Depends(idempotency_key)],
) -> Redemption:
    """Redeem an item: the redemption, COMPLETED (or PENDING when a backend did not answer in
    time: it finishes on its own; read it back). A refusal is a problem with its reason: 409
    (OUT_OF_STOCK, USER_LIMIT_REACHED, RISK_DENIED, ...) or 422 (INSUFFICIENT_POINTS), and the
    redemption is kept as FAILED with that reason. The same Idempotency-Key returns the same
    result."""
    reply = await services.mall.Redeem(
        mpb.RedeemRequest(
            request_id=key,
            user_id=me.user_id,
            item_id=body.item_id,
            quantity=body.quantity,
            shipping_address=body.shipping_address,
            device_id=client(request).device_id,
            ip=client(request).ip,
        ),
        timeout=services.timeout * SAGA_TIMEOUT_FACTOR,
    )
    return Redemption.of(reply.redemption)


@router.get("/me/redemptions", response_model=Redemptions)
async def my_redemptions(
    me: Me,
    services: Services,
    page_size: PageSize = PAGE_SIZE,
    page_token: PageToken = "",
) -> Redemptions:
    """The user's redemptions, newest first."""
    reply = await services.mall.ListRedemptions(
        mpb.ListRedemptionsRequest(user_id=me.user_id, page_size=page_size, page_token=page_token),
        timeout=services.timeout,
    )
    return Redemptions(
        redemptions=[Redemption.of(r) for r in reply.redemptions],
        next_page_token=reply.next_page_token,
    )


@router.post("/me/redemptions/{redemption_id}/cancel", response_model=Redemption)
async def cancel(
    redemption_id: RedemptionId,
    me: Me,
    services: Services,
    key: Annotated[str, Depends(idempotency_key)],
) -> Redemption:
    """Cancel a redemption not yet shipped: the points go back to where they came from."""
    reply = await services.mall.CancelRedemption(
        mpb.CancelRedemptionRequest(
            request_id=key, user_id=me.user_id, redemption_id=redemption_id
        ),
        timeout=services.timeout * SAGA_TIMEOUT_FACTOR,
    )
    return Redemption.of(reply.redemption)


LotteryId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


@router.get("/lotteries/{lottery_id}", response_model=model_for(mpb.GetLotteryResponse.DESCRIPTOR))
async def get_lottery(lottery_id: LotteryId, me: Me, services: Services) -> dict[str, Any]:
    """A lottery's prizes and the SHA-256 of the seed its draws use (fairness is checkable)."""
    reply = await services.mall.GetLottery(
        mpb.GetLotteryRequest(lottery_id=lottery_id), timeout=services.timeout
    )
    return to_json(reply)


class DrawIn(BaseModel):
    shipping_address: str = Field(default="", max_length=500)


@router.post(
    "/me/lotteries/{lottery_id}/draws", response_model=model_for(mpb.DrawResult.DESCRIPTOR)
)
async def draw(
    lottery_id: LotteryId,
    me: Me,
    services: Services,
    key: Annotated[str, Depends(idempotency_key)],
    origin: Annotated[Client, Depends(client)],
    body: DrawIn | None = None,
) -> dict[str, Any]:
    """Draw once (charged in points); the same Idempotency-Key returns the same draw. Give a
    shipping address in case a physical prize is won."""
    reply = await services.mall.Draw(
        mpb.DrawRequest(
            request_id=key,
            user_id=me.user_id,
            lottery_id=lottery_id,
            shipping_address=body.shipping_address if body else "",
            device_id=origin.device_id,
            ip=origin.ip,
        ),
        timeout=services.timeout * SAGA_TIMEOUT_FACTOR,
    )
    return to_json(reply.result)


@router.get(
    "/me/draws/{draw_id}/verification",
    response_model=model_for(mpb.VerifyDrawResponse.DESCRIPTOR),
)
async def verify_draw(
    draw_id: Annotated[str, Path(pattern=r"^[0-9]{1,18}$")], me: Me, services: Services
) -> dict[str, Any]:
    """Recompute one of the user's draws from its seed, user and nonce."""
    reply = await services.mall.VerifyDraw(
        mpb.VerifyDrawRequest(user_id=me.user_id, draw_id=draw_id), timeout=services.timeout
    )
    return to_json(reply)
