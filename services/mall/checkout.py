"""Points-as-cash at checkout: quote, then a ledger hold confirmed or cancelled with the
payment, and pro-rata refunds to the exact lots."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import grpc
from asyncpg import Record

from loyalty.common.v1 import common_pb2
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.mall.v1 import mall_pb2 as pb
from services.common.db import database_time
from services.common.errors import AlreadyExists, FailedPrecondition, NotFound, parse_rpc_error
from services.common.timestamps import to_timestamp
from services.mall.config import CheckoutPolicy, MallConfig

STATUS = {
    "APPLIED": pb.DEDUCTION_STATUS_APPLIED,
    "CONFIRMED": pb.DEDUCTION_STATUS_CONFIRMED,
    "CANCELLED": pb.DEDUCTION_STATUS_CANCELLED,
}


def max_points(policy: CheckoutPolicy, order_minor: int, available: int) -> int:
    """The most points usable: capped by the share of the order and the balance, rounded
    down to the step; nothing below the minimum order amount."""
    if order_minor < policy.min_order_minor:
        return 0
    share_minor = order_minor * policy.max_share_percent // 100
    by_order = share_minor * policy.points_per_major_unit // 100
    usable = min(by_order, available)
    return usable - usable % policy.step_points


def covered_minor(policy: CheckoutPolicy, points: int) -> int:
    """Money (minor units) the points pay for, rounded down."""
    return points * 100 // policy.points_per_major_unit


def refund_points(points: int, order_minor: int, refund_minor: int) -> int:
    """Points returned for refunding `refund_minor` of the order: pro rata, rounded down."""
    return points * refund_minor // order_minor


def deduction(row: Record) -> pb.Deduction:
    return pb.Deduction(
        user_id=row["user_id"],
        order_id=row["order_id"],
        points=row["points"],
        covered=common_pb2.Money(amount_minor=row["covered_minor"], currency=row["currency"]),
        order_amount=common_pb2.Money(amount_minor=row["order_minor"], currency=row["currency"]),
        status=STATUS[row["status"]],
        refunded_points=row["refunded_points"],
    )


class Checkout:
    def __init__(
        self,
        pool: asyncpg.Pool,
        config: MallConfig,
        ledger: ledger_pb2_grpc.LedgerServiceAsyncStub,
        timeout: float = 5.0,
    ) -> None:
        self.pool = pool
        self.policy = config.checkout
        self.hold_seconds = config.hold_seconds
        self.ledger = ledger
        self.timeout = timeout

    async def quote(self, user_id: str, order_minor: int) -> pb.QuoteDeductionResponse:
        balance = await self.ledger.GetBalance(
            lpb.GetBalanceRequest(user_id=user_id), timeout=self.timeout
        )
        available = balance.balance.available
        points = max_points(self.policy, order_minor, available)
        return pb.QuoteDeductionResponse(
            max_points=points,
            covered=common_pb2.Money(
                amount_minor=covered_minor(self.policy, points), currency=self.policy.currency
            ),
            available_points=available,
            step_points=self.policy.step_points,
        )

    async def _find(self, user_id: str, order_id: str) -> Record:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM deductions WHERE user_id = $1 AND order_id = $2",
                user_id,
                order_id,
            )
        if row is None:
            raise NotFound(
                "DEDUCTION_NOT_FOUND", f"no deduction for order {order_id}", {"order_id": order_id}
            )
        return row

    async def apply(self, request: pb.ApplyDeductionRequest) -> Record:
        async with self.pool.acquire() as conn:
            existing = await conn.fetchrow(
                "SELECT * FROM deductions WHERE user_id = $1 AND order_id = $2",
                request.user_id,
                request.order_id,
            )
        if existing is not None:
            if existing["request_id"] != request.request_id or existing["points"] != request.points:
                raise AlreadyExists(
                    "DEDUCTION_EXISTS",
                    "the order already has a deduction",
                    {"order_id": request.order_id},
                )
            return existing
        order_minor = request.order_amount.amount_minor
        quote = await self.quote(request.user_id, order_minor)
        if request.points % self.policy.step_points or request.points > quote.max_points:
            raise FailedPrecondition(
                "DEDUCTION_EXCEEDS_LIMIT",
                f"at most {quote.max_points} points, in steps of {self.policy.step_points}",
                {"max_points": str(quote.max_points), "step_points": str(self.policy.step_points)},
            )
        now = await database_time(self.pool)
        try:
            hold = await self.ledger.Hold(
                lpb.HoldRequest(
                    request_id=f"checkout:{request.order_id}:hold",
                    user_id=request.user_id,
                    amount=request.points,
                    reason_code="CHECKOUT",
                    deadline_time=to_timestamp(now + timedelta(seconds=self.hold_seconds)),
                    metadata={"order_id": request.order_id},
                ),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as exc:
            error = parse_rpc_error(exc)
            if error.reason == "INSUFFICIENT_POINTS":
                raise FailedPrecondition(error.reason, error.message, error.metadata) from None
            raise
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                """
                INSERT INTO deductions (user_id, order_id, request_id, points, order_minor,
                                        currency, covered_minor, hold_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (user_id, order_id) DO NOTHING RETURNING *
                """,
                request.user_id,
                request.order_id,
                request.request_id,
                request.points,
                order_minor,
                self.policy.currency,
                covered_minor(self.policy, request.points),
                hold.hold.hold_id,
            )
        return row if row is not None else await self._find(request.user_id, request.order_id)

    async def confirm(self, user_id: str, order_id: str) -> Record:
        row = await self._find(user_id, order_id)
        if row["status"] == "CONFIRMED":
            return row
        if row["status"] != "APPLIED":
            raise FailedPrecondition(
                "DEDUCTION_CANCELLED", "the deduction was cancelled", {"order_id": order_id}
            )
        captured = await self.ledger.CaptureHold(
            lpb.CaptureHoldRequest(
                request_id=f"checkout:{order_id}:capture", user_id=user_id, hold_id=row["hold_id"]
            ),
            timeout=self.timeout,
        )
        return await self._set(row, "CONFIRMED", captured.capture.transfer_id)

    async def cancel(self, user_id: str, order_id: str) -> Record:
        row = await self._find(user_id, order_id)
        if row["status"] == "CANCELLED":
            return row
        if row["status"] != "APPLIED":
            raise FailedPrecondition(
                "DEDUCTION_CONFIRMED", "a paid order is refunded instead", {"order_id": order_id}
            )
        try:
            await self.ledger.ReleaseHold(
                lpb.ReleaseHoldRequest(
                    request_id=f"checkout:{order_id}:release",
                    user_id=user_id,
                    hold_id=row["hold_id"],
                ),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as exc:
            if parse_rpc_error(exc).reason not in ("HOLD_EXPIRED", "HOLD_ALREADY_RELEASED"):
                raise
        return await self._set(row, "CANCELLED", None)

    async def refund(self, request: pb.RefundDeductionRequest) -> tuple[Record, int]:
        row = await self._find(request.user_id, request.order_id)
        async with self.pool.acquire() as conn:
            done = await conn.fetchval(
                "SELECT points FROM deduction_refunds "
                "WHERE user_id = $1 AND order_id = $2 AND request_id = $3",
                request.user_id,
                request.order_id,
                request.request_id,
            )
        if done is not None:
            return row, done  # a replay
        if row["status"] != "CONFIRMED":
            raise FailedPrecondition(
                "DEDUCTION_NOT_CONFIRMED",
                "only paid orders are refunded",
                {"order_id": request.order_id},
            )
        amount = request.refund_amount.amount_minor
        if row["refunded_minor"] + amount > row["order_minor"]:
            raise FailedPrecondition(
                "REFUND_EXCEEDS_ORDER",
                "refunds would exceed the order amount",
                {"refundable_minor": str(row["order_minor"] - row["refunded_minor"])},
            )
        # Cumulative rounding: the last refund of the whole order returns every point.
        total = refund_points(row["points"], row["order_minor"], row["refunded_minor"] + amount)
        points = total - row["refunded_points"]
        if points:
            await self.ledger.Reverse(
                lpb.ReverseRequest(
                    request_id=f"checkout:{request.order_id}:refund:{request.request_id}",
                    user_id=request.user_id,
                    transfer_id=row["capture_id"],
                    amount=points,
                    reason_code="ORDER_REFUNDED",
                ),
                timeout=self.timeout,
            )
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                """
                INSERT INTO deduction_refunds (user_id, order_id, request_id, amount_minor, points)
                VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true
                """,
                request.user_id,
                request.order_id,
                request.request_id,
                amount,
                points,
            )
            if inserted:
                updated = await conn.fetchrow(
                    """
                    UPDATE deductions SET refunded_points = refunded_points + $3,
                                          refunded_minor = refunded_minor + $4
                    WHERE user_id = $1 AND order_id = $2 RETURNING *
                    """,
                    request.user_id,
                    request.order_id,
                    points,
                    amount,
                )
                assert updated is not None
                row = updated
        return row, points

    async def _set(self, row: Record, status: str, capture_id: str | None) -> Record:
        async with self.pool.acquire() as conn:
            updated = await conn.fetchrow(
                """
                UPDATE deductions SET status = $3, capture_id = coalesce($4, capture_id)
                WHERE user_id = $1 AND order_id = $2 RETURNING *
                """,
                row["user_id"],
                row["order_id"],
                status,
                capture_id,
            )
        assert updated is not None
        return updated
