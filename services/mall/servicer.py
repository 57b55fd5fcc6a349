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
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from services.common.idempotency import RequestLog, fingerprint, idempotent_admin, key_reused
from services.common.paging import decode_token, encode_token
from services.common.peers import PeerUnavailable
from services.common.timestamps import to_timestamp
from services.common.validation import (
    MAX_MONEY_MINOR,
    ascii_number,
    check_identifier,
    check_points,
    check_request_id,
    check_user_id,
    raise_if,
    storable,
)
from services.mall import catalog, coupons
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


def _check_user(user_id: str, bad: list[FieldViolation]) -> None:
    check_user_id(bad, user_id)


def _redemption_id(value: str, bad: list[FieldViolation]) -> int:
    number = ascii_number(value)
    if number is None:
        bad.append(FieldViolation("redemption_id", "must be an id returned by the mall"))
        return 0
    return number


def _check_order(
    request: Any,
    bad: list[FieldViolation],
    *,
    amount_field: str = "order_amount",
    currency: str | None = None,
) -> None:
    _check_user(request.user_id, bad)
    if hasattr(request, "order_id"):
        check_identifier(bad, "order_id", request.order_id, 128)
    if hasattr(request, "request_id"):
        check_request_id(bad, request.request_id)
    if amount_field:
        money = getattr(request, amount_field)
        if not 0 < money.amount_minor <= MAX_MONEY_MINOR:
            bad.append(
                FieldViolation(
                    f"{amount_field}.amount_minor", f"must be > 0 and <= {MAX_MONEY_MINOR}"
                )
            )
        if currency is not None and money.currency != currency:
            bad.append(FieldViolation(f"{amount_field}.currency", f"must be {currency}"))


def _check_origin(request: Any, bad: list[FieldViolation]) -> None:
    """The device and IP a spend came from, passed on to the risk check."""
    check_identifier(bad, "device_id", request.device_id, 128, required=False)
    check_identifier(bad, "ip", request.ip, 128, required=False)


def _check_lottery_id(lottery_id: str) -> None:
    if not catalog.valid_item_id(lottery_id):
        raise InvalidArgument.fields(
            [FieldViolation("lottery_id", "is required: lower-case letters, digits, '_.-'")]
        )


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
        bad: list[FieldViolation] = []
        _check_order(
            request, bad, amount_field=amount_field, currency=self.checkout.policy.currency
        )
        if bad:
            raise InvalidArgument.fields(bad)

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
        bad: list[FieldViolation] = []
        _check_order(request, bad)
        check_identifier(bad, "code", request.code, 64)
        if bad:
            raise InvalidArgument.fields(bad)

    @idempotent_admin(pb.UpsertLotteryResponse)
    async def UpsertLottery(
        self, request: pb.UpsertLotteryRequest, context: Context
    ) -> pb.UpsertLotteryResponse:
        seed_hash = await self.lotteries.upsert(request.lottery)
        return pb.UpsertLotteryResponse(lottery=request.lottery, current_seed_sha256=seed_hash)

    async def GetLottery(
        self, request: pb.GetLotteryRequest, context: Context
    ) -> pb.GetLotteryResponse:
        _check_lottery_id(request.lottery_id)
        return await self.lotteries.get(request.lottery_id)

    @idempotent_admin(pb.RotateSeedResponse)
    async def RotateSeed(
        self, request: pb.RotateSeedRequest, context: Context
    ) -> pb.RotateSeedResponse:
        _check_lottery_id(request.lottery_id)
        return await self.lotteries.rotate(request.lottery_id)

    async def Draw(self, request: pb.DrawRequest, context: Context) -> pb.DrawResponse:
        bad: list[FieldViolation] = []
        _check_user(request.user_id, bad)
        check_request_id(bad, request.request_id)
        if not storable(request.shipping_address, 500, required=False):
            bad.append(FieldViolation("shipping_address", "at most 500 characters"))
        _check_origin(request, bad)
        if bad:
            raise InvalidArgument.fields(bad)
        _check_lottery_id(request.lottery_id)
        return pb.DrawResponse(result=await self.lotteries.draw(request))

    async def VerifyDraw(
        self, request: pb.VerifyDrawRequest, context: Context
    ) -> pb.VerifyDrawResponse:
        bad: list[FieldViolation] = []
        _check_user(request.user_id, bad)
        draw_id = ascii_number(request.draw_id)
        if draw_id is None:
            bad.append(FieldViolation("draw_id", "must be an id returned by Draw"))
        if bad:
            raise InvalidArgument.fields(bad)
        assert draw_id is not None
        return await self.lotteries.verify(request.user_id, draw_id)

    async def QuoteDeduction(
        self, request: pb.QuoteDeductionRequest, context: Context
    ) -> pb.QuoteDeductionResponse:
        self._validate(request)
        return await self.checkout.quote(request.user_id, request.order_amount.amount_minor)

    async def ApplyDeduction(
        self, request: pb.ApplyDeductionRequest, context: Context
    ) -> pb.ApplyDeductionResponse:
        bad: list[FieldViolation] = []
        _check_order(request, bad, currency=self.checkout.policy.currency)
        check_points(bad, "points", request.points)
        _check_origin(request, bad)
        raise_if(bad)
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
        bad: list[FieldViolation] = []
        if request.type not in pb.ItemType.values():
            bad.append(FieldViolation("type", "unknown item type"))
        if request.max_points_price < 0:
            bad.append(FieldViolation("max_points_price", "must be >= 0"))
        if not 0 <= request.page_size <= 200:
            bad.append(FieldViolation("page_size", "must be between 0 and 200"))
        if bad:
            raise InvalidArgument.fields(bad)
        limit = request.page_size or 50
        after = decode_token(request.page_token, 1)[0] if request.page_token else ""
        item_type = pb.ItemType.Name(request.type) if request.type else None
        async with self.pool.acquire() as conn:
            rows = await repo.list_items(conn, item_type, request.max_points_price, after, limit)
        page = rows[:limit]
        response = pb.ListItemsResponse(items=[repo.item_of(r) for r in page])
        if len(rows) > limit:
            response.next_page_token = encode_token(page[-1]["item_id"])
        return response

    async def Redeem(self, request: pb.RedeemRequest, context: Context) -> pb.RedeemResponse:
        bad: list[FieldViolation] = []
        check_request_id(bad, request.request_id)
        _check_user(request.user_id, bad)
        if not catalog.valid_item_id(request.item_id):
            bad.append(FieldViolation("item_id", "is required: lower-case letters, digits, '_.-'"))
        if not 1 <= request.quantity <= 100:
            bad.append(FieldViolation("quantity", "must be between 1 and 100"))
        if not storable(request.shipping_address, 500, required=False):
            bad.append(FieldViolation("shipping_address", "at most 500 characters, no NUL"))
        _check_origin(request, bad)
        if bad:
            raise InvalidArgument.fields(bad)
        print_ = fingerprint("Redeem", request)
        item = None
        async with self.pool.acquire() as conn:
            row = await repo.redemption_by_request(conn, request.user_id, request.request_id)
            if row is None:
                item = await repo.get_item(conn, request.item_id)
                if item is None:
                    raise NotFound(
                        "ITEM_NOT_FOUND", f"no item {request.item_id}", {"item_id": request.item_id}
                    )
                if item["item_type"] in catalog.SHIPPED and not request.shipping_address:
                    raise InvalidArgument.fields(
                        [FieldViolation("shipping_address", "is required for shipped items")]
                    )
                cash = repo.item_of(item).cash_price
                row = await repo.create_redemption(
                    conn,
                    {
                        "user_id": request.user_id,
                        "request_id": request.request_id,
                        "payload_sha256": print_,
                        "item_id": request.item_id,
                        "item_type": item["item_type"],
                        "quantity": request.quantity,
                        "points": item["points_price"] * request.quantity,
                        "shipping_address": request.shipping_address,
                        "device_id": request.device_id,
                        "ip": request.ip,
                        "cash_minor": cash.amount_minor * request.quantity,
                        "cash_currency": cash.currency,
                    },
                ) or await repo.redemption_by_request(conn, request.user_id, request.request_id)
        assert row is not None
        if bytes(row["payload_sha256"]) != print_:
            raise key_reused(request.request_id)
        try:
            row = await self.saga.drive(row, item)
        except PeerUnavailable as exc:
            # A backend is unreachable: the redemption stays PENDING; recovery finishes it.
            log.warning("redemption pending", extra={"error": str(exc)})
            async with self.pool.acquire() as conn:
                row = await repo.get_redemption(conn, row["user_id"], row["redemption_id"])
            assert row is not None
        if row["step"] == "FAILED":
            raise FailedPrecondition(
                row["failure_reason"],
                f"the redemption failed: {row['failure_reason']}",
                {"redemption_id": str(row["redemption_id"])},
            )
        return pb.RedeemResponse(redemption=redemption(row))

    async def _find(self, user_id: str, redemption_id: str) -> Record:
        bad: list[FieldViolation] = []
        _check_user(user_id, bad)
        number = _redemption_id(redemption_id, bad)
        if bad:
            raise InvalidArgument.fields(bad)
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
        bad: list[FieldViolation] = []
        if not request.all_members:
            _check_user(request.user_id, bad)
        elif request.user_id:
            bad.append(FieldViolation("user_id", "must be empty with all_members"))
        if request.status not in pb.RedemptionStatus.values():
            bad.append(FieldViolation("status", "must be a redemption status"))
        if not 0 <= request.page_size <= 100:
            bad.append(FieldViolation("page_size", "must be between 0 and 100"))
        before = None
        if request.page_token:
            [token] = decode_token(request.page_token, 1)
            before = ascii_number(token)
            if before is None:
                bad.append(FieldViolation("page_token", "is not valid"))
        if bad:
            raise InvalidArgument.fields(bad)
        limit = request.page_size or 20
        async with self.pool.acquire() as conn:
            rows = await repo.list_redemptions(
                conn,
                None if request.all_members else request.user_id,
                before,
                limit,
                STEPS.get(request.status),
            )
        page = rows[:limit]
        response = pb.ListRedemptionsResponse(redemptions=[redemption(r) for r in page])
        if len(rows) > limit:
            response.next_page_token = encode_token(str(page[-1]["redemption_id"]))
        return response

    async def CancelRedemption(
        self, request: pb.CancelRedemptionRequest, context: Context
    ) -> pb.CancelRedemptionResponse:
        bad: list[FieldViolation] = []
        check_request_id(bad, request.request_id)
        raise_if(bad)
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
        if request.status not in (pb.SHIPMENT_STATUS_SHIPPED, pb.SHIPMENT_STATUS_DELIVERED):
            raise InvalidArgument.fields([FieldViolation("status", "SHIPPED or DELIVERED")])
        target = pb.ShipmentStatus.Name(request.status).removeprefix("SHIPMENT_STATUS_")
        current = row["shipment_status"]
        if (
            row["step"] != "COMPLETED"
            or current is None
            or (SHIPMENT_ORDER.index(target) < SHIPMENT_ORDER.index(current))
        ):
            raise FailedPrecondition(
                "SHIPMENT_NOT_UPDATABLE",
                "only completed physical redemptions move forward",
                {"current": current or "", "requested": target},
            )
        async with self.pool.acquire() as conn:
            updated = await repo.advance(conn, row, ("COMPLETED",), shipment_status=target)
        assert updated is not None
        return pb.UpdateShipmentResponse(redemption=redemption(updated))
