"""The gRPC edge of the mall."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import grpc
from asyncpg import Record

from loyalty.common.v1 import common_pb2
from loyalty.mall.v1 import mall_pb2 as pb
from loyalty.mall.v1 import mall_pb2_grpc as pb_grpc
from services.common.dead_letter_desk import DeadLetterDesk, DeadLetterRpcs
from services.common.errors import FailedPrecondition, NotFound
from services.common.idempotency import RequestLog, idempotent_admin
from services.common.paging import LIST, Pager, token_number
from services.common.peers import PeerUnavailable
from services.common.timestamps import to_timestamp
from services.common.validation import Checker
from services.mall import catalog, coupons, validation
from services.mall import repository as repo
from services.mall.checkout import Checkout
from services.mall.checkout import deduction as checkout_deduction
from services.mall.lottery import Lotteries
from services.mall.saga import Saga

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
STATUS = {
    "COMPLETED": pb.REDEMPTION_STATUS_COMPLETED,
    "FAILED": pb.REDEMPTION_STATUS_FAILED,
    "CANCELLED": pb.REDEMPTION_STATUS_CANCELLED,
}
# The saga steps behind each status (a status filter of ListRedemptions).
STEPS = {status: [step] for step, status in STATUS.items()} | {
    pb.REDEMPTION_STATUS_PENDING: ["STARTED", "STOCK_RESERVED", "HOLD_PLACED", "FULFILLED"]
}
SHIPMENT_ORDER = ("PENDING", "SHIPPED", "DELIVERED")


def redemption(row: Record) -> pb.Redemption:
    message = pb.Redemption(
        redemption_id=str(row["redemption_id"]),
        user_id=row["user_id"],
        item_id=row["item_id"],
        quantity=row["quantity"],
        points=row["points"],
        status=STATUS.get(row["step"], pb.REDEMPTION_STATUS_PENDING),
        saga_step=row["step"],
        failure_reason=row["failure_reason"],
        code=row["code"] or "",
        shipping_address=row["shipping_address"],
        request_id=row["request_id"],
        create_time=to_timestamp(row["created_at"]),
        update_time=to_timestamp(row["updated_at"]),
    )
    if row["code_expires_at"] is not None:
        message.code_expire_time.CopyFrom(to_timestamp(row["code_expires_at"]))
    if row["cash_minor"]:
        message.cash_due.CopyFrom(
            common_pb2.Money(amount_minor=row["cash_minor"], currency=row["cash_currency"])
        )
    if row["shipment_status"] is not None:
        message.shipment_status = pb.ShipmentStatus.Value(
            f"SHIPMENT_STATUS_{row['shipment_status']}"
        )
    return message


def _shipment_refusal(step: str, current: str | None, target: str) -> str:
    """Why a shipment cannot move to `target`, in words; "" when it can."""
    if current is None:
        return "only physical goods are shipped"
    if step != "COMPLETED":
        return f"the redemption has not completed (its step is {step}): nothing to ship yet"
    if SHIPMENT_ORDER.index(target) < SHIPMENT_ORDER.index(current):
        return f"the shipment is already {current.lower()}"
    return ""


class MallServicer(DeadLetterRpcs, pb_grpc.MallServiceServicer):
    messages = pb

    def __init__(
        self,
        pool: asyncpg.Pool,
        saga: Saga,
        checkout: Checkout,
        lotteries: Lotteries,
        dead_letters: DeadLetterDesk,
    ) -> None:
        self.pool = pool
        self.saga = saga
        self.checkout = checkout
        self.lotteries = lotteries
        self.dead_letters = dead_letters
        self.requests = RequestLog(pool)

    def _validate(self, request: Any, amount_field: str = "order_amount") -> None:
        c = Checker()
        validation.check_order(
            c, request, amount_field=amount_field, currency=self.checkout.policy.currency
        )
        c.done()

    async def ValidateCoupon(
        self, request: pb.ValidateCouponRequest, context: Context
    ) -> pb.ValidateCouponResponse:
        self._check_coupon_request(request)
        async with self.pool.acquire() as conn:
            row = await coupons.find(conn, request.user_id, request.code)
        reason, discount = coupons.check(row, request.order_amount)
        return pb.ValidateCouponResponse(
            valid=not reason,
            reason=reason,
            coupon=coupons.message(row),
            discount=common_pb2.Money(amount_minor=discount, currency=row["currency"]),
        )

    async def UseCoupon(
        self, request: pb.UseCouponRequest, context: Context
    ) -> pb.UseCouponResponse:
        self._check_coupon_request(request)
        async with self.pool.acquire() as conn, conn.transaction():
            row, discount = await coupons.use(
                conn, request.user_id, request.code, request.order_id, request.order_amount
            )
        return pb.UseCouponResponse(
            coupon=coupons.message(row),
            discount=common_pb2.Money(amount_minor=discount, currency=row["currency"]),
        )

    @staticmethod
    def _check_coupon_request(request: Any) -> None:
        c = Checker()
        validation.check_order(c, request)
        c.identifier("code", request.code, 64)
        c.done()

    @idempotent_admin(pb.UpsertLotteryResponse)
    async def UpsertLottery(
        self, request: pb.UpsertLotteryRequest, context: Context
    ) -> pb.UpsertLotteryResponse:
        seed_hash = await self.lotteries.upsert(request.lottery)
        return pb.UpsertLotteryResponse(lottery=request.lottery, current_seed_sha256=seed_hash)

    async def GetLottery(
        self, request: pb.GetLotteryRequest, context: Context
    ) -> pb.GetLotteryResponse:
        validation.check_lottery_id(request.lottery_id)
        return await self.lotteries.get(request.lottery_id)

    async def ListLotteries(
        self, request: pb.ListLotteriesRequest, context: Context
    ) -> pb.ListLotteriesResponse:
        c = Checker()
        pager = Pager(c, LIST, request.page_size, request.page_token)
        c.done()
        rows = await self.lotteries.page(pager.after[0] if pager.after else "", pager.fetch)
        page, token = pager.page(rows, lambda lottery: [lottery.lottery_id])
        return pb.ListLotteriesResponse(lotteries=page, next_page_token=token)

    @idempotent_admin(pb.RotateSeedResponse)
    async def RotateSeed(
        self, request: pb.RotateSeedRequest, context: Context
    ) -> pb.RotateSeedResponse:
        validation.check_lottery_id(request.lottery_id)
        return await self.lotteries.rotate(request.lottery_id)

    async def Draw(self, request: pb.DrawRequest, context: Context) -> pb.DrawResponse:
        c = Checker()
        c.user_id(request.user_id)
        c.request_id(request.request_id)
        c.text("shipping_address", request.shipping_address, 500, required=False)
        validation.check_origin(c, request)
        c.done()
        validation.check_lottery_id(request.lottery_id)
        return pb.DrawResponse(result=await self.lotteries.draw(request))

    async def VerifyDraw(
        self, request: pb.VerifyDrawRequest, context: Context
    ) -> pb.VerifyDrawResponse:
        c = Checker()
        c.user_id(request.user_id)
        draw_id = c.number("draw_id", request.draw_id, "must be an id returned by Draw")
        c.done()
        return await self.lotteries.verify(request.user_id, draw_id)

    async def QuoteDeduction(
        self, request: pb.QuoteDeductionRequest, context: Context
    ) -> pb.QuoteDeductionResponse:
        self._validate(request)
        return await self.checkout.quote(request.user_id, request.order_amount.amount_minor)

    async def ApplyDeduction(
        self, request: pb.ApplyDeductionRequest, context: Context
    ) -> pb.ApplyDeductionResponse:
        c = Checker()
        validation.check_order(c, request, currency=self.checkout.policy.currency)
        c.points("points", request.points)
        validation.check_origin(c, request)
        c.done()
        row = await self.checkout.apply(request)
        return pb.ApplyDeductionResponse(deduction=checkout_deduction(row))

    async def ConfirmDeduction(
        self, request: pb.ConfirmDeductionRequest, context: Context
    ) -> pb.ConfirmDeductionResponse:
        self._validate(request, amount_field="")

        async def confirm() -> pb.ConfirmDeductionResponse:
            row = await self.checkout.confirm(request.user_id, request.order_id)
            return pb.ConfirmDeductionResponse(deduction=checkout_deduction(row))

        return await self.requests.run(
            request.user_id,
            request.request_id,
            "ConfirmDeduction",
            request,
            pb.ConfirmDeductionResponse,
            confirm,
        )

    async def CancelDeduction(
        self, request: pb.CancelDeductionRequest, context: Context
    ) -> pb.CancelDeductionResponse:
        self._validate(request, amount_field="")

        async def cancel() -> pb.CancelDeductionResponse:
            row = await self.checkout.cancel(request.user_id, request.order_id)
            return pb.CancelDeductionResponse(deduction=checkout_deduction(row))

        return await self.requests.run(
            request.user_id,
            request.request_id,
            "CancelDeduction",
            request,
            pb.CancelDeductionResponse,
            cancel,
        )

    async def RefundDeduction(
        self, request: pb.RefundDeductionRequest, context: Context
    ) -> pb.RefundDeductionResponse:
        self._validate(request, amount_field="refund_amount")
        row, points = await self.checkout.refund(request)
        return pb.RefundDeductionResponse(deduction=checkout_deduction(row), refunded_points=points)

    @idempotent_admin(pb.UpsertItemResponse)
    async def UpsertItem(
        self, request: pb.UpsertItemRequest, context: Context
    ) -> pb.UpsertItemResponse:
        catalog.check_item(request.item)
        async with self.pool.acquire() as conn:
            await repo.save_item(conn, request.item)
        return pb.UpsertItemResponse(item=request.item)

    async def ListItems(
        self, request: pb.ListItemsRequest, context: Context
    ) -> pb.ListItemsResponse:
        c = Checker()
        c.require(request.max_points_price >= 0, "max_points_price", "must be >= 0")
        pager = Pager(c, LIST, request.page_size, request.page_token)
        c.done()
        after = pager.after[0] if pager.after else ""
        item_type = pb.ItemType.Name(request.type) if request.type else None
        async with self.pool.acquire() as conn:
            rows = await repo.list_items(
                conn,
                item_type,
                request.max_points_price,
                after,
                pager.fetch,
                request.include_disabled,
            )
        page, token = pager.page(rows, lambda r: [r["item_id"]])
        return pb.ListItemsResponse(items=[repo.item_of(r) for r in page], next_page_token=token)

    async def Redeem(self, request: pb.RedeemRequest, context: Context) -> pb.RedeemResponse:
        validation.check_redeem(request)
        row, item = await self.saga.start(request)
        try:
            row = await self.saga.drive(row, item)
        except PeerUnavailable as exc:
            # A backend is unreachable: the redemption stays PENDING; recovery finishes it.
            log.warning("redemption pending", extra={"error": str(exc)})
            async with self.pool.acquire() as conn:
                found = await repo.get_redemption(conn, row["user_id"], row["redemption_id"])
            assert found is not None
            row = found
        if row["step"] == "FAILED":
            raise FailedPrecondition(
                row["failure_reason"],
                f"the redemption failed: {row['failure_reason']}",
                {"redemption_id": str(row["redemption_id"])},
            )
        return pb.RedeemResponse(redemption=redemption(row))

    async def _find(self, user_id: str, redemption_id: str) -> Record:
        c = Checker()
        c.user_id(user_id)
        number = c.number("redemption_id", redemption_id, "must be an id returned by the mall")
        c.done()
        async with self.pool.acquire() as conn:
            row = await repo.get_redemption(conn, user_id, number)
        if row is None:
            raise NotFound(
                "REDEMPTION_NOT_FOUND",
                f"no redemption {redemption_id}",
                {"redemption_id": redemption_id},
            )
        return row

    async def GetRedemption(
        self, request: pb.GetRedemptionRequest, context: Context
    ) -> pb.GetRedemptionResponse:
        row = await self._find(request.user_id, request.redemption_id)
        return pb.GetRedemptionResponse(redemption=redemption(row))

    async def ListRedemptions(
        self, request: pb.ListRedemptionsRequest, context: Context
    ) -> pb.ListRedemptionsResponse:
        c = Checker()
        if not request.all_members:
            c.user_id(request.user_id)
        else:
            c.require(not request.user_id, "user_id", "must be empty with all_members")
        pager = Pager(c, LIST, request.page_size, request.page_token)
        c.done()
        before = token_number(pager.after[0]) if pager.after else None
        async with self.pool.acquire() as conn:
            rows = await repo.list_redemptions(
                conn,
                None if request.all_members else request.user_id,
                before,
                pager.fetch,
                STEPS.get(request.status),
            )
        page, token = pager.page(rows, lambda r: [str(r["redemption_id"])])
        return pb.ListRedemptionsResponse(
            redemptions=[redemption(r) for r in page], next_page_token=token
        )

    async def CancelRedemption(
        self, request: pb.CancelRedemptionRequest, context: Context
    ) -> pb.CancelRedemptionResponse:
        c = Checker()
        c.request_id(request.request_id)
        c.done()
        row = await self._find(request.user_id, request.redemption_id)

        async def cancel() -> pb.CancelRedemptionResponse:
            return pb.CancelRedemptionResponse(redemption=redemption(await self.saga.cancel(row)))

        return await self.requests.run(
            request.user_id,
            request.request_id,
            "CancelRedemption",
            request,
            pb.CancelRedemptionResponse,
            cancel,
        )

    @idempotent_admin(pb.UpdateShipmentResponse)
    async def UpdateShipment(
        self, request: pb.UpdateShipmentRequest, context: Context
    ) -> pb.UpdateShipmentResponse:
        row = await self._find(request.user_id, request.redemption_id)
        c = Checker()
        c.require(
            request.status in (pb.SHIPMENT_STATUS_SHIPPED, pb.SHIPMENT_STATUS_DELIVERED),
            "status",
            "SHIPPED or DELIVERED",
        )
        c.done()
        target = pb.ShipmentStatus.Name(request.status).removeprefix("SHIPMENT_STATUS_")
        current = row["shipment_status"]
        refusal = _shipment_refusal(row["step"], current, target)
        if refusal:
            raise FailedPrecondition(
                "SHIPMENT_NOT_UPDATABLE", refusal, {"current": current or "", "requested": target}
            )
        async with self.pool.acquire() as conn:
            updated = await repo.advance(conn, row, ("COMPLETED",), shipment_status=target)
        assert updated is not None
        return pb.UpdateShipmentResponse(redemption=redemption(updated))
