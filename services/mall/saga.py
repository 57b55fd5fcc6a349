"""The redemption saga: risk → stock → hold → fulfil → capture, with compensation.

An item fulfilled on the spot (a code or a coupon, nothing shipped) takes a shorter road:
risk → stock → one ledger debit that completes the redemption with its code. Nothing can fail
after the debit, so a hold to release would buy nothing; a shipped item keeps the hold, which
stays releasable until the shipment is set up.

Each step is a guarded state change in mall's tables, and each ledger call uses a request id
derived from the redemption, so any step can be repeated after a crash without applying
twice. `drive` takes a redemption from wherever it stands to a final state; Redeem calls it
right away, and the recovery loop calls it for sagas left unfinished.
"""

from __future__ import annotations

import base64
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from asyncpg import Record

from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.mall.v1 import mall_pb2 as pb
from services.common.db import Conn
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from services.common.idempotency import fingerprint, key_reused
from services.common.ledger_client import HoldGone, InsufficientPoints, LedgerClient
from services.common.peers import PeerError, PeerRefused
from services.common.periodic import traced_work
from services.common.rules_client import RulesClient
from services.common.telemetry import links_to
from services.mall import catalog
from services.mall import coupons_repository as coupon_repo
from services.mall import repository as repo
from services.mall.config import MallConfig

log = logging.getLogger(__name__)


def new_code() -> str:
    """An unguessable code: 80 random bits, in base32 without padding (16 characters)."""
    return base64.b32encode(secrets.token_bytes(10)).decode()


def _spend(row: Record, step: str) -> dict[str, Any]:
    """What the redemption's hold or debit says to the ledger. The request id is derived from
    the redemption, not the clock: a retried call must be the same request."""
    return {
        "request_id": f"mall:{row['redemption_id']}:{step}",
        "user_id": row["user_id"],
        "amount": row["points"],
        "reason_code": "REDEEM",
        "metadata": {"redemption_id": str(row["redemption_id"]), "item_id": row["item_id"]},
    }


def _redemption_values(request: pb.RedeemRequest, item: Record, print_: bytes) -> dict[str, Any]:
    cash = repo.item_of(item).cash_price
    return {
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
    }


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Saga:
    def __init__(
        self,
        pool: asyncpg.Pool,
        config: MallConfig,
        ledger: LedgerClient,
        rules: RulesClient,
    ) -> None:
        self.pool = pool
        self.config = config
        self.ledger = ledger
        self.rules = rules

    async def start(self, request: pb.RedeemRequest) -> tuple[Record, Record | None]:
        """The redemption a Redeem request names, created STARTED at the item's price, or the
        one an earlier request with the same id created (IDEMPOTENCY_KEY_REUSED when that one
        asked for something else). Returns it with the item as read now (None on a replay)."""
        print_ = fingerprint("Redeem", request)
        item = None
        async with self.pool.acquire() as conn:
            row = await repo.redemption_by_request(conn, request.user_id, request.request_id)
            if row is None:
                item = await self._item_for(conn, request)
                row = await repo.create_redemption(
                    conn, _redemption_values(request, item, print_)
                ) or await repo.redemption_by_request(conn, request.user_id, request.request_id)
        assert row is not None
        if bytes(row["payload_sha256"]) != print_:
            raise key_reused(request.request_id)
        return row, item

    @staticmethod
    async def _item_for(conn: Conn, request: pb.RedeemRequest) -> Record:
        item = await repo.get_item(conn, request.item_id)
        if item is None:
            raise NotFound(
                "ITEM_NOT_FOUND", f"no item {request.item_id}", {"item_id": request.item_id}
            )
        if item["item_type"] in catalog.SHIPPED and not request.shipping_address:
            raise InvalidArgument.fields(
                [FieldViolation("shipping_address", "is required for shipped items")]
            )
        return item

    async def _load(self, user_id: str, redemption_id: int) -> Record:
        async with self.pool.acquire() as conn:
            row = await repo.get_redemption(conn, user_id, redemption_id)
        assert row is not None
        return row

    async def drive(self, row: Record, item_row: Record | None = None) -> Record:
        """Run the saga to a final state. Raises `PeerUnavailable` on a transient failure (a
        backend down); the redemption then stays PENDING and recovery picks it up again later.
        A permanent refusal by a peer fails the redemption and compensates. `item_row` is the
        item as the caller read it (read here when not given and a step needs it)."""
        if item_row is None and row["step"] in ("STARTED", "STOCK_RESERVED", "HOLD_PLACED"):
            async with self.pool.acquire() as conn:
                item_row = await repo.get_item(conn, row["item_id"])
        steps = {
            "STARTED": self._reserve,
            "STOCK_RESERVED": self._hold if row["item_type"] in catalog.SHIPPED else self._settle,
            "HOLD_PLACED": self._fulfil,
            "FULFILLED": self._capture,
        }
        while row["step"] in steps:
            try:
                moved = await steps[row["step"]](row, item_row)
            except PeerRefused as exc:
                log.warning("a peer refused a redemption step", extra={"error": str(exc)})
                moved = await self._fail(row, exc.reason)
            row = (
                moved
                if moved is not None
                else await self._load(row["user_id"], row["redemption_id"])
            )
        return row

    async def _reserve(self, row: Record, item_row: Record | None) -> Record | None:
        risk = await self.rules.check_risk(row["user_id"], "redeem", row["device_id"], row["ip"])
        if not risk.allowed:
            return await self._fail(row, "RISK_DENIED")
        eligible = repo.item_of(item_row).eligible_tier_ids if item_row is not None else []
        if eligible and await self.rules.user_tier_id(row["user_id"]) not in eligible:
            return await self._fail(row, "TIER_NOT_ELIGIBLE")
        # Availability as of the drive's read, moments ago; stock is taken atomically.
        if item_row is None or not item_row["available"]:
            return await self._fail(row, "ITEM_NOT_AVAILABLE")
        item = repo.item_of(item_row)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                now = await repo.lock_user(conn, row["user_id"])  # serialises this user's sagas
                if (
                    item.per_user_limit
                    and await self._redeemed_in_period(conn, row, item, now) + row["quantity"]
                    > item.per_user_limit
                ):
                    raise _Refused("USER_LIMIT_REACHED")
                moved = await repo.reserve(conn, row)
                if moved is not None and not moved["taken"]:
                    raise _Refused("OUT_OF_STOCK")  # rolls the move back
                return moved  # None: another driver got here first
        except _Refused as refused:
            return await self._fail(row, refused.reason)

    async def _redeemed_in_period(
        self, conn: Conn, row: Record, item: pb.Item, now: datetime
    ) -> int:
        since = catalog.period_start(item.limit_period, now, self.config.zone)
        return await repo.redeemed_in_period(
            conn, row["user_id"], row["item_id"], since, row["redemption_id"]
        )

    async def _hold(self, row: Record, item_row: Record | None) -> Record | None:
        # Derived from the redemption, not the clock: a retried Hold must be the same request.
        deadline = row["created_at"] + timedelta(seconds=self.config.hold_seconds)
        if deadline <= row["read_at"]:
            return await self._fail(row, "TIMED_OUT")  # recovered too late to place a hold
        try:
            hold = await self.ledger.hold(
                lpb.HoldRequest(deadline_time=deadline, **_spend(row, "hold"))
            )
        except InsufficientPoints:
            return await self._fail(row, "INSUFFICIENT_POINTS")
        async with self.pool.acquire() as conn:
            return await repo.advance(
                conn, row, ("STOCK_RESERVED",), step="HOLD_PLACED", hold_id=hold.hold.hold_id
            )

    async def _settle(self, row: Record, item_row: Record | None) -> Record | None:
        """Debit and complete in one go. The debit's request id is derived from the redemption,
        so recovery re-sends the same debit: applied once, whenever the crash happened (so no
        deadline applies here: a debit already made must still complete)."""
        try:
            debit = await self.ledger.debit(lpb.DebitRequest(**_spend(row, "debit")))
        except InsufficientPoints:
            return await self._fail(row, "INSUFFICIENT_POINTS")
        return await self._fulfil(
            row,
            item_row,
            ("STOCK_RESERVED",),
            step="COMPLETED",
            capture_id=debit.transfer.transfer_id,
        )

    async def _fulfil(
        self,
        row: Record,
        item_row: Record | None,
        from_steps: tuple[str, ...] = ("HOLD_PLACED",),
        **changes: object,
    ) -> Record | None:
        changes.setdefault("step", "FULFILLED")
        item = repo.item_of(item_row) if item_row is not None else None
        if row["item_type"] in catalog.SHIPPED:
            changes["shipment_status"] = "PENDING"
        else:
            days = item.code_valid_days if item is not None else 0
            changes["code"] = new_code()
            changes["code_expires_at"] = row["read_at"] + timedelta(days=days) if days else None
        async with self.pool.acquire() as conn:
            if item is None or item.type != pb.ITEM_TYPE_COUPON:
                return await repo.advance(conn, row, from_steps, **changes)  # one statement
            async with conn.transaction():
                moved = await repo.advance(conn, row, from_steps, **changes)
                if moved is not None:
                    await coupon_repo.issue(conn, moved, item)
        return moved

    async def _capture(self, row: Record, item_row: Record | None) -> Record | None:
        try:
            captured = await self.ledger.capture_hold(
                lpb.CaptureHoldRequest(
                    request_id=f"mall:{row['redemption_id']}:capture",
                    user_id=row["user_id"],
                    hold_id=row["hold_id"],
                )
            )
        except HoldGone:
            return await self._fail(row, "HOLD_EXPIRED")
        async with self.pool.acquire() as conn:
            return await repo.advance(
                conn, row, ("FULFILLED",), step="COMPLETED", capture_id=captured.capture.transfer_id
            )

    async def _fail(self, row: Record, reason: str) -> Record | None:
        """Compensate whatever the saga did (hold, stock, code) and end it as FAILED."""
        if row["hold_id"] is not None:
            try:
                await self.ledger.release_hold(
                    lpb.ReleaseHoldRequest(
                        request_id=f"mall:{row['redemption_id']}:release",
                        user_id=row["user_id"],
                        hold_id=row["hold_id"],
                    )
                )
            except HoldGone:
                pass  # released or expired already: the points are back
        return await self._unwind(
            row,
            ("STARTED", "STOCK_RESERVED", "HOLD_PLACED", "FULFILLED"),
            step="FAILED",
            failure_reason=reason,
        )

    async def cancel(self, row: Record) -> Record:
        """Refund a completed redemption to the lots its points came from; restore stock."""
        if row["step"] == "CANCELLED":
            return row
        shipped = row["shipment_status"] not in (None, "PENDING")
        refusal = FailedPrecondition(
            "NOT_CANCELLABLE",
            "only completed redemptions not yet shipped (and coupons not yet used) can be "
            "cancelled",
            {"redemption_id": str(row["redemption_id"]), "step": row["step"]},
        )
        if row["step"] != "COMPLETED" or shipped:
            raise refusal
        # Revoke the coupon first, atomically, so it cannot be used while the refund runs.
        async with self.pool.acquire() as conn, conn.transaction():
            if not await coupon_repo.revoke_unless_used(conn, row["user_id"], row["redemption_id"]):
                raise refusal
        try:
            await self.ledger.reverse(
                lpb.ReverseRequest(
                    request_id=f"mall:{row['redemption_id']}:refund",
                    user_id=row["user_id"],
                    transfer_id=row["capture_id"],
                    reason_code="REDEMPTION_CANCELLED",
                )
            )
        except PeerError:
            async with self.pool.acquire() as conn:
                await coupon_repo.reinstate(conn, row["user_id"], row["redemption_id"])
            raise
        cancelled = await self._unwind(row, ("COMPLETED",), step="CANCELLED")
        return cancelled or await self._load(row["user_id"], row["redemption_id"])

    async def _unwind(
        self, row: Record, from_steps: tuple[str, ...], **changes: object
    ) -> Record | None:
        """End a redemption (FAILED or CANCELLED) and give back what it held: its coupon is
        revoked and its stock restored, once, by whichever driver moves it first."""
        async with self.pool.acquire() as conn, conn.transaction():
            ended = await repo.advance(
                conn,
                row,
                from_steps,
                stock_reserved=False,
                code=None,
                code_expires_at=None,
                shipment_status=None,
                **changes,
            )
            if ended is not None:
                await coupon_repo.revoke(conn, row["user_id"], row["redemption_id"])
                if row["stock_reserved"]:
                    await repo.restore_stock(conn, row["item_id"], row["quantity"])
        return ended

    async def recover_once(self) -> int:
        """Finish or compensate sagas a crash (or an outage) left unfinished; one failing
        saga does not hold up the others. Returns how many were looked at."""
        async with self.pool.acquire() as conn:
            rows = await repo.unfinished(conn, self.config.recovery_after_seconds, 100)
        if rows:
            links = links_to(row["traceparent"] for row in rows)
            with traced_work("mall.recover_sagas", links, {"points.sagas": len(rows)}):
                await self._recover(rows)
        return len(rows)

    async def _recover(self, rows: list[Record]) -> None:
        for item in rows:
            try:
                await self.drive(await self._load(item["user_id"], item["redemption_id"]))
            except (PeerError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning(
                    "saga still unfinished",
                    extra={"redemption_id": item["redemption_id"], "error": str(exc)},
                )
