"""The ledger's mutating operations. Each runs inside `execute_once` with its member locked.

Accounts: "member" and "holds" are the member's own; "issuance:<source>", "redemption",
"adjustment" and "expiry" are system accounts that may go negative.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from loyalty.ledger.v1 import ledger_pb2 as pb
from services.common.db import Conn
from services.common.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from services.common.timestamps import from_timestamp
from services.ledger import convert
from services.ledger import repository as repo
from services.ledger.config import LedgerConfig

MEMBER, HOLDS, REDEMPTION, ADJUSTMENT = "member", "holds", "redemption", "adjustment"


class Operations:
    def __init__(self, config: LedgerConfig) -> None:
        self.config = config

    async def balance(self, conn: Conn, user_id: str) -> pb.Balance:
        rows, expiring = await repo.balances(conn, [user_id], 0, self.config.zone.key)
        return convert.balance(rows[user_id], expiring[user_id])

    async def credit(self, conn: Conn, now: datetime, req: pb.CreditRequest) -> pb.CreditResponse:
        expires = (
            from_timestamp(req.expire_time)
            if req.HasField("expire_time")
            else self.config.expiry.expires_at(now)
        )
        matures = from_timestamp(req.mature_time) if req.HasField("mature_time") else None
        if matures is not None and matures <= now:
            matures = None  # already mature
        violations = []
        if expires <= now:
            violations.append(FieldViolation("expire_time", "must be in the future"))
        elif matures is not None and matures >= expires:
            violations.append(FieldViolation("mature_time", "must be before expire_time"))
        if violations:
            raise InvalidArgument.fields(violations)
        adjustment = req.kind == pb.TRANSFER_KIND_ADJUSTMENT
        row = await repo.insert_transfer(
            conn,
            user_id=req.user_id,
            kind="ADJUSTMENT" if adjustment else "EARN",
            debit=ADJUSTMENT if adjustment else f"issuance:{req.source}",
            credit=MEMBER,
            amount=req.amount,
            request_id=req.request_id,
            reason_code=req.reason_code,
            metadata=req.metadata,
        )
        lot_id = await repo.insert_lot(
            conn, req.user_id, row["transfer_id"], req.source, req.amount, expires, matures
        )
        await repo.adjust_member(conn, req.user_id, balance=req.amount, earned=req.amount)
        return pb.CreditResponse(
            transfer=convert.transfer(row, expires, matures),
            lot_id=str(lot_id),
            balance=await self.balance(conn, req.user_id),
        )

    async def _require_spendable(self, conn: Conn, user_id: str, amount: int) -> None:
        available = await repo.spendable(conn, user_id)
        if available < amount:
            # Holds past their deadline count as released: release them now and look again.
            for hold in await repo.overdue_holds(conn, user_id):
                await self.release_hold_row(
                    conn, hold, "EXPIRED", f"hold-expired:{hold['hold_id']}"
                )
            available = await repo.spendable(conn, user_id)
        if available < amount:
            raise FailedPrecondition(
                "INSUFFICIENT_POINTS",
                f"{amount} points requested, {available} available",
                {"available": str(available), "requested": str(amount)},
            )

    async def debit(self, conn: Conn, now: datetime, req: pb.DebitRequest) -> pb.DebitResponse:
        await self._require_spendable(conn, req.user_id, req.amount)
        adjustment = req.kind == pb.TRANSFER_KIND_ADJUSTMENT
        row = await repo.insert_transfer(
            conn,
            user_id=req.user_id,
            kind="ADJUSTMENT" if adjustment else "SPEND",
            debit=MEMBER,
            credit=ADJUSTMENT if adjustment else REDEMPTION,
            amount=req.amount,
            request_id=req.request_id,
            reason_code=req.reason_code,
            metadata=req.metadata,
        )
        tid = row["transfer_id"]
        taken = await repo.take_from_lots(conn, req.user_id, req.amount, tid, tid)
        await repo.adjust_member(conn, req.user_id, balance=-req.amount, spent=req.amount)
        return pb.DebitResponse(
            transfer=convert.transfer(row),
            allocations=convert.allocations(taken),
            balance=await self.balance(conn, req.user_id),
        )

    async def hold(self, conn: Conn, now: datetime, req: pb.HoldRequest) -> pb.HoldResponse:
        deadline = from_timestamp(req.deadline_time)
        if deadline <= now:
            raise InvalidArgument.fields([FieldViolation("deadline_time", "must be in the future")])
        await self._require_spendable(conn, req.user_id, req.amount)
        hold_id = await repo.next_hold_id(conn)
        row = await repo.insert_transfer(
            conn,
            user_id=req.user_id,
            kind="HOLD",
            debit=MEMBER,
            credit=HOLDS,
            amount=req.amount,
            request_id=req.request_id,
            reason_code=req.reason_code,
            metadata=req.metadata,
            hold_id=hold_id,
        )
        tid = row["transfer_id"]
        await repo.take_from_lots(conn, req.user_id, req.amount, tid, tid)
        hold = await repo.insert_hold(conn, req.user_id, hold_id, tid, req.amount, deadline)
        await repo.adjust_member(conn, req.user_id, balance=-req.amount, held=req.amount)
        return pb.HoldResponse(
            hold=convert.hold(hold), balance=await self.balance(conn, req.user_id)
        )

    async def _active_hold(self, conn: Conn, user_id: str, hold_id: str) -> asyncpg.Record:
        hold = await repo.get_hold(conn, user_id, int(hold_id))
        if hold is None:
            raise NotFound(
                "HOLD_NOT_FOUND", f"no hold {hold_id} for this member", {"hold_id": hold_id}
            )
        status = hold["status"]
        if status == "CAPTURED":
            raise FailedPrecondition(
                "HOLD_ALREADY_CAPTURED", "the hold was already captured", {"hold_id": hold_id}
            )
        if status == "RELEASED":
            raise FailedPrecondition(
                "HOLD_ALREADY_RELEASED", "the hold was already released", {"hold_id": hold_id}
            )
        if status == "EXPIRED":
            raise FailedPrecondition(
                "HOLD_EXPIRED",
                "the hold passed its deadline and was released",
                {"hold_id": hold_id},
            )
        return hold

    async def release_hold_row(
        self, conn: Conn, hold: asyncpg.Record, status: str, request_id: str
    ) -> tuple[asyncpg.Record, asyncpg.Record]:
        """Give all of an active hold back to the member (by request, or at its deadline)."""
        user_id, amount = hold["user_id"], hold["amount"]
        row = await repo.insert_transfer(
            conn,
            user_id=user_id,
            kind="RELEASE",
            debit=HOLDS,
            credit=MEMBER,
            amount=amount,
            request_id=request_id,
            reason_code="HOLD_EXPIRED" if status == "EXPIRED" else "HOLD_RELEASED",
            related_transfer_id=hold["hold_transfer_id"],
            hold_id=hold["hold_id"],
        )
        grace = await self._grace_until(conn)
        await repo.give_back(
            conn, user_id, amount, hold["hold_transfer_id"], row["transfer_id"], grace
        )
        resolved = await repo.resolve_hold(conn, user_id, hold["hold_id"], status, 0, amount)
        await repo.adjust_member(conn, user_id, balance=amount, held=-amount)
        return resolved, row

    async def _grace_until(self, conn: Conn) -> datetime:
        now: datetime = await conn.fetchval("SELECT now()")
        return now + self.config.refund_grace

    async def capture_hold(
        self, conn: Conn, now: datetime, req: pb.CaptureHoldRequest
    ) -> pb.CaptureHoldResponse:
        hold = await self._active_hold(conn, req.user_id, req.hold_id)
        if hold["overdue"]:
            raise FailedPrecondition(
                "HOLD_EXPIRED", "the hold passed its deadline", {"hold_id": req.hold_id}
            )
        amount = hold["amount"]
        captured = req.amount or amount
        if captured > amount:
            raise InvalidArgument.fields(
                [FieldViolation("amount", f"must be at most the hold's {amount} points")]
            )
        common = {
            "user_id": req.user_id,
            "request_id": req.request_id,
            "related_transfer_id": hold["hold_transfer_id"],
            "hold_id": hold["hold_id"],
        }
        capture = await repo.insert_transfer(
            conn, kind="CAPTURE", debit=HOLDS, credit=REDEMPTION, amount=captured, **common
        )
        response = pb.CaptureHoldResponse(capture=convert.transfer(capture))
        rest = amount - captured
        if rest:
            release = await repo.insert_transfer(
                conn, kind="RELEASE", debit=HOLDS, credit=MEMBER, amount=rest, **common
            )
            await repo.give_back(
                conn,
                req.user_id,
                rest,
                hold["hold_transfer_id"],
                release["transfer_id"],
                await self._grace_until(conn),
            )
            response.release.CopyFrom(convert.transfer(release))
        resolved = await repo.resolve_hold(
            conn, req.user_id, hold["hold_id"], "CAPTURED", captured, rest
        )
        await repo.adjust_member(conn, req.user_id, held=-amount, balance=rest, spent=captured)
        response.hold.CopyFrom(convert.hold(resolved))
        response.balance.CopyFrom(await self.balance(conn, req.user_id))
        return response

    async def release_hold(
        self, conn: Conn, now: datetime, req: pb.ReleaseHoldRequest
    ) -> pb.ReleaseHoldResponse:
        hold = await self._active_hold(conn, req.user_id, req.hold_id)
        resolved, release = await self.release_hold_row(conn, hold, "RELEASED", req.request_id)
        return pb.ReleaseHoldResponse(
            hold=convert.hold(resolved),
            release=convert.transfer(release),
            balance=await self.balance(conn, req.user_id),
        )

    async def reverse(
        self, conn: Conn, now: datetime, req: pb.ReverseRequest
    ) -> pb.ReverseResponse:
        original = await repo.get_transfer(conn, req.user_id, int(req.transfer_id))
        if original is None:
            raise NotFound(
                "TRANSFER_NOT_FOUND",
                f"no transfer {req.transfer_id} for this member",
                {"transfer_id": req.transfer_id},
            )
        kind = original["kind"]
        if original["credit_account"] == MEMBER and kind in ("EARN", "ADJUSTMENT"):
            response = await self._take_back(conn, req, original)
        elif original["debit_account"] == MEMBER and kind in ("SPEND", "ADJUSTMENT"):
            response = await self._refund(conn, req, original, original["transfer_id"])
        elif kind == "CAPTURE":
            response = await self._refund(conn, req, original, original["related_transfer_id"])
        else:
            raise FailedPrecondition(
                "TRANSFER_NOT_REVERSIBLE",
                f"a {kind} transfer cannot be reversed",
                {"transfer_id": req.transfer_id, "kind": kind},
            )
        response.balance.CopyFrom(await self.balance(conn, req.user_id))
        return response

    def _exceeds(self, req: pb.ReverseRequest, reversible: int) -> FailedPrecondition:
        return FailedPrecondition(
            "AMOUNT_EXCEEDS_REVERSIBLE",
            f"only {reversible} points of transfer {req.transfer_id} can still be reversed",
            {"transfer_id": req.transfer_id, "reversible": str(reversible)},
        )

    async def _take_back(
        self, conn: Conn, req: pb.ReverseRequest, original: asyncpg.Record
    ) -> pb.ReverseResponse:
        """Reverse a credit: take back what is left of its lot, report what was already gone."""
        reversible = original["amount"] - await repo.reversed_so_far(
            conn, req.user_id, original["transfer_id"]
        )
        if req.amount > reversible:
            raise self._exceeds(req, reversible)
        target = req.amount or reversible
        lot = await repo.lot_of(conn, req.user_id, original["transfer_id"])
        assert lot is not None, "every credit has a lot"
        take = min(target, lot["remaining"])
        response = pb.ReverseResponse(reversed=take, shortfall=target - take)
        if take:
            row = await repo.insert_transfer(
                conn,
                user_id=req.user_id,
                kind="REVERSAL",
                debit=MEMBER,
                credit=original["debit_account"],
                amount=take,
                request_id=req.request_id,
                reason_code=req.reason_code,
                metadata=req.metadata,
                related_transfer_id=original["transfer_id"],
            )
            await repo.take_from_lot(conn, req.user_id, lot["lot_id"], take, row["transfer_id"])
            await repo.adjust_member(conn, req.user_id, balance=-take, reversed=take)
            response.reversal.CopyFrom(convert.transfer(row))
            response.allocations.extend(
                convert.allocations([repo.Taken(lot["lot_id"], take, lot["expires_at"])])
            )
        return response

    async def _refund(
        self,
        conn: Conn,
        req: pb.ReverseRequest,
        original: asyncpg.Record,
        origin: int,
    ) -> pb.ReverseResponse:
        """Refund a spend or capture to the exact lots it took from."""
        refundable = await repo.net_taken(conn, req.user_id, origin)
        if req.amount > refundable:
            raise self._exceeds(req, refundable)
        amount = req.amount or refundable
        response = pb.ReverseResponse(reversed=amount)
        if amount:
            row = await repo.insert_transfer(
                conn,
                user_id=req.user_id,
                kind="REVERSAL",
                debit=original["credit_account"],
                credit=MEMBER,
                amount=amount,
                request_id=req.request_id,
                reason_code=req.reason_code,
                metadata=req.metadata,
                related_transfer_id=original["transfer_id"],
            )
            returned = await repo.give_back(
                conn,
                req.user_id,
                amount,
                origin,
                row["transfer_id"],
                await self._grace_until(conn),
            )
            await repo.adjust_member(conn, req.user_id, balance=amount, spent=-amount)
            response.reversal.CopyFrom(convert.transfer(row))
            response.allocations.extend(convert.allocations(returned, sign=-1))
        return response
