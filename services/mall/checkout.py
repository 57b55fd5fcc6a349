"""Points-as-cash at checkout: quote, then a ledger hold confirmed or cancelled with the
payment, and pro-rata refunds to the exact lots.

A deduction is a small state machine on the order's row:
PENDING (claimed, hold being placed) → APPLIED (hold placed) → CONFIRMED (captured) or
CANCELLED (released, or the hold expired); PENDING → FAILED when risk or the ledger refuses.
Claiming the row before calling the ledger makes concurrent applies on one order meet in
PostgreSQL: the same request replays, another request is refused DEDUCTION_EXISTS. Confirm and
cancel race only in the ledger, where exactly one of capture and release can win; the loser
reads the winner's outcome as a business error, never as INTERNAL.
"""

from __future__ import annotations

import hashlib

import asyncpg
from asyncpg import Record

from loyalty.common.v1 import common_pb2
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.mall.v1 import mall_pb2 as pb
from services.common.db import Conn
from services.common.errors import AlreadyExists, FailedPrecondition, NotFound
from services.common.idempotency import fingerprint, key_reused
from services.common.ledger_client import (
    HoldCaptured,
    HoldGone,
    LedgerClient,
)
from services.common.peers import PeerRefused
from services.common.rules_client import RulesClient
from services.common.timestamps import to_timestamp
from services.mall import checkout_repository as repo
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
        self, pool: asyncpg.Pool, config: MallConfig, ledger: LedgerClient, rules: RulesClient
    ) -> None:
        self.pool = pool
        self.policy = config.checkout
        self.hold_seconds = config.hold_seconds
        self.ledger = ledger
        self.rules = rules

    async def quote(self, user_id: str, order_minor: int) -> pb.QuoteDeductionResponse:
        available = (await self.ledger.get_balance(user_id)).available
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
            row = await repo.find(conn, user_id, order_id)
        if row is None or row["status"] in ("PENDING", "FAILED"):
            raise NotFound(
                "DEDUCTION_NOT_FOUND", f"no deduction for order {order_id}", {"order_id": order_id}
            )
        return row

    async def apply(self, request: pb.ApplyDeductionRequest) -> Record:
        print_ = fingerprint("ApplyDeduction", request)
        async with self.pool.acquire() as conn:
            row = await repo.find(conn, request.user_id, request.order_id)
        if row is None or (row["status"] == "FAILED" and row["request_id"] != request.request_id):
            row = await self._claim(request, print_)
        if row["request_id"] != request.request_id:
            raise AlreadyExists(
                "DEDUCTION_EXISTS",
                "the order already has a deduction",
                {"order_id": row["order_id"]},
            )
        stored = row["payload_sha256"]  # NULL on deductions made before fingerprints
        if (stored is not None and bytes(stored) != print_) or row["points"] != request.points:
            raise key_reused(request.request_id)
        if row["status"] == "FAILED":
            raise _failure(row)
        if row["status"] == "PENDING":
            row = await self._place_hold(row)
        return row

    async def _claim(self, request: pb.ApplyDeductionRequest, print_: bytes) -> Record:
        """Check risk and the quote, then claim the order (or read who claimed it first)."""
        await self.rules.require_allowed(request.user_id, "checkout", request.device_id, request.ip)
        quote = await self.quote(request.user_id, request.order_amount.amount_minor)
        if request.points % self.policy.step_points or request.points > quote.max_points:
            raise FailedPrecondition(
                "DEDUCTION_EXCEEDS_LIMIT",
                f"at most {quote.max_points} points, in steps of {self.policy.step_points}",
                {"max_points": str(quote.max_points), "step_points": str(self.policy.step_points)},
            )
        key = hashlib.sha256(f"{request.order_id}\0{request.request_id}".encode()).hexdigest()
        values = {
            "user_id": request.user_id,
            "order_id": request.order_id,
            "request_id": request.request_id,
            "payload_sha256": print_,
            "points": request.points,
            "order_minor": request.order_amount.amount_minor,
            "currency": self.policy.currency,
            "covered_minor": covered_minor(self.policy, request.points),
            "hold_request_id": f"checkout:{key[:48]}:hold",
        }
        async with self.pool.acquire() as conn:
            try:
                row = await repo.claim(conn, values, self.hold_seconds)
            except asyncpg.UniqueViolationError:  # the key already names another order
                raise key_reused(request.request_id) from None
            if row is None:
                row = await repo.find(conn, request.user_id, request.order_id)
        assert row is not None
        return row

    async def _place_hold(self, row: Record) -> Record:
        try:
            hold = await self.ledger.hold(
                lpb.HoldRequest(
                    request_id=row["hold_request_id"],
                    user_id=row["user_id"],
                    amount=row["points"],
                    reason_code="CHECKOUT",
                    deadline_time=to_timestamp(row["hold_deadline"]),
                    metadata={"order_id": row["order_id"]},
                )
            )
        except PeerRefused as exc:
            async with self.pool.acquire() as conn:
                failed = await repo.move(conn, row, "PENDING", "FAILED", failure_reason=exc.reason)
            raise _failure(failed or row, exc.reason) from None
        async with self.pool.acquire() as conn:
            moved = await repo.move(conn, row, "PENDING", "APPLIED", hold_id=hold.hold.hold_id)
            return moved or await self._reread(conn, row)

    async def confirm(self, user_id: str, order_id: str) -> Record:
        row = await self._find(user_id, order_id)
        if row["status"] == "CONFIRMED":
            return row
        if row["status"] == "CANCELLED":
            raise _cancelled(order_id)
        try:
            captured = await self.ledger.capture_hold(
                lpb.CaptureHoldRequest(
                    request_id=f"checkout:{order_id}:capture",
                    user_id=user_id,
                    hold_id=row["hold_id"],
                )
            )
        except HoldGone as exc:
            # Released by a cancel that won the race, or expired: the points are back.
            async with self.pool.acquire() as conn:
                await repo.move(conn, row, "APPLIED", "CANCELLED")
            if exc.reason == "HOLD_EXPIRED":
                raise FailedPrecondition(
                    "DEDUCTION_EXPIRED",
                    "the points were reserved too long ago and went back to the member",
                    {"order_id": order_id},
                ) from None
            raise _cancelled(order_id) from None
        async with self.pool.acquire() as conn:
            moved = await repo.move(
                conn, row, "APPLIED", "CONFIRMED", capture_id=captured.capture.transfer_id
            )
            return moved or await self._reread(conn, row)

    async def cancel(self, user_id: str, order_id: str) -> Record:
        row = await self._find(user_id, order_id)
        if row["status"] == "CANCELLED":
            return row
        if row["status"] == "CONFIRMED":
            raise _confirmed(order_id)
        try:
            await self.ledger.release_hold(
                lpb.ReleaseHoldRequest(
                    request_id=f"checkout:{order_id}:release",
                    user_id=user_id,
                    hold_id=row["hold_id"],
                )
            )
        except HoldCaptured:
            raise _confirmed(order_id) from None  # a confirm won the race
        except HoldGone:
            pass  # expired or already released: the points are back either way
        async with self.pool.acquire() as conn:
            moved = await repo.move(conn, row, "APPLIED", "CANCELLED")
            return moved or await self._reread(conn, row)

    async def refund(self, request: pb.RefundDeductionRequest) -> tuple[Record, int]:
        """Refunds of one order run one at a time (the row stays locked across the ledger
        call), so concurrent partial refunds add up exactly and never ask for too much."""
        amount = request.refund_amount.amount_minor
        async with self.pool.acquire() as conn, conn.transaction():
            row = await repo.find(conn, request.user_id, request.order_id, lock=True)
            if row is None or row["status"] in ("PENDING", "FAILED"):
                raise NotFound(
                    "DEDUCTION_NOT_FOUND",
                    f"no deduction for order {request.order_id}",
                    {"order_id": request.order_id},
                )
            done = await repo.find_refund(
                conn, request.user_id, request.order_id, request.request_id
            )
            if done is not None:
                if done["amount_minor"] != amount:
                    raise key_reused(request.request_id)
                return row, done["points"]  # a replay
            if row["status"] != "CONFIRMED":
                raise FailedPrecondition(
                    "DEDUCTION_NOT_CONFIRMED",
                    "only paid orders are refunded",
                    {"order_id": request.order_id},
                )
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
                await self.ledger.reverse(
                    lpb.ReverseRequest(
                        request_id=f"checkout:{request.order_id}:refund:{request.request_id}",
                        user_id=request.user_id,
                        transfer_id=row["capture_id"],
                        amount=points,
                        reason_code="ORDER_REFUNDED",
                    )
                )
            row = await repo.record_refund(conn, row, request.request_id, amount, points)
        return row, points

    @staticmethod
    async def _reread(conn: Conn, row: Record) -> Record:
        current = await repo.find(conn, row["user_id"], row["order_id"])
        assert current is not None
        return current


def _failure(row: Record, reason: str | None = None) -> FailedPrecondition:
    reason = reason or row["failure_reason"] or "DEDUCTION_FAILED"
    return FailedPrecondition(
        reason, f"the points could not be reserved: {reason}", {"order_id": row["order_id"]}
    )


def _cancelled(order_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        "DEDUCTION_CANCELLED", "the deduction was cancelled", {"order_id": order_id}
    )


def _confirmed(order_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        "DEDUCTION_CONFIRMED", "a paid order is refunded instead", {"order_id": order_id}
    )
