"""The ledger's mutating operations. Each runs inside a batch of `engine.BatchEngine.run`: in
its transaction, with its member locked and its request key claimed, within a savepoint.

Accounts: "member" and "holds" are the member's own; "issuance:<source>", "redemption",
"adjustment" and "expiry" are system accounts that may go negative.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime

import asyncpg
from google.protobuf.message import Message

from loyalty.ledger.v1 import ledger_pb2 as pb
from services.common.db import Conn
from services.common.errors import (
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from services.common.timestamps import from_timestamp
from services.ledger import convert
from services.ledger import holds_repository as holds_repo
from services.ledger import repository as repo
from services.ledger.config import LedgerConfig

MEMBER, HOLDS, REDEMPTION, ADJUSTMENT = "member", "holds", "redemption", "adjustment"


class Operations:
    def __init__(self, config: LedgerConfig) -> None:
        self.config = config

    async def fill_balances(self, conn: Conn, responses: Sequence[tuple[str, Message]]) -> None:
        """Set each (user_id, response)'s `balance` to the member's balance as this transaction
        sees it: in a batch, after all of the batch's operations."""
        users = sorted({user_id for user_id, _ in responses})
        if not users:
            return
        rows, _ = await repo.balances(conn, users, 0, self.config.zone.key)
        for user_id, response in responses:
            balance: pb.Balance = response.balance  # type: ignore[attr-defined]
            balance.CopyFrom(convert.balance(rows[user_id], ()))

    async def credit_many(
        self, conn: Conn, now: datetime, requests: Sequence[pb.CreditRequest]
    ) -> list[pb.CreditResponse | DomainError]:
        """Apply credits together: one transfer and one lot each, one update per member."""
        outcomes: list[pb.CreditResponse | DomainError] = []
        rows = []
        for req in requests:
            try:
                expires, matures = self._credit_times(now, req)
            except InvalidArgument as exc:
                outcomes.append(exc)
                continue
            adjustment = req.kind == pb.TRANSFER_KIND_ADJUSTMENT
            rows.append(
                (
                    req.user_id,
                    "ADJUSTMENT" if adjustment else "EARN",
                    ADJUSTMENT if adjustment else f"issuance:{req.source}",
                    req.source,
                    req.amount,
                    req.request_id,
                    req.reason_code,
                    json.dumps(dict(req.metadata)),
                    expires,
                    matures,
                )
            )
            outcomes.append(pb.CreditResponse())
        if not rows:
            return outcomes
        made = iter(await repo.credit_many(conn, rows))
        for response in outcomes:
            if isinstance(response, pb.CreditResponse):
                row = next(made)
                response.transfer.CopyFrom(
                    convert.transfer(row, row["expires_at"], row["matures_at"])
                )
                response.lot_id = str(row["lot_id"])
        return outcomes

    def _credit_times(
        self, now: datetime, req: pb.CreditRequest
    ) -> tuple[datetime, datetime | None]:
        """The lot's expiry (the request's, else the policy's) and maturity (None: at once)."""
        expires = (
            from_timestamp(req.expire_time)
            if req.HasField("expire_time")
            else self.config.expiry.expires_at(now)
        )
        matures = from_timestamp(req.mature_time) if req.HasField("mature_time") else None
        if matures is not None and matures <= now:
            matures = None  # already mature
        if expires <= now:
            raise InvalidArgument.fields([FieldViolation("expire_time", "must be in the future")])
        if matures is not None and matures >= expires:
            raise InvalidArgument.fields(
                [FieldViolation("mature_time", "must be before expire_time")]
            )
        return expires, matures

    async def _spend(
        self,
        conn: Conn,
        now: datetime,
        req: pb.DebitRequest | pb.HoldRequest,
        kind: str,
        credit: str,
        hold_id: int | None = None,
    ) -> repo.Spent:
        """Spend or reserve points, or fail with INSUFFICIENT_POINTS having changed nothing (the
        spend is one statement that writes nothing when the points fall short)."""
        spend = functools.partial(
            repo.spend,
            conn,
            user_id=req.user_id,
            amount=req.amount,
            kind=kind,
            credit=credit,
            request_id=req.request_id,
            reason_code=req.reason_code,
            metadata=req.metadata,
            hold_id=hold_id,
        )
        spent = await spend()
        if spent.transfer is not None:
            return spent
        # Holds past their deadline count as released: release them now and try again, in a
        # savepoint, so that a spend still refused leaves nothing behind.
        async with conn.transaction():
            overdue = await holds_repo.overdue_holds(conn, req.user_id)
            for hold in overdue:
                await self.release_hold_row(
                    conn, now, hold, "EXPIRED", f"hold-expired:{hold['hold_id']}"
                )
            if overdue:
                spent = await spend()
            if spent.transfer is None:
                raise FailedPrecondition(
                    "INSUFFICIENT_POINTS",
                    f"{req.amount} points requested, {spent.available} available",
                    {"available": str(spent.available), "requested": str(req.amount)},
                )
        return spent

    async def debit(self, conn: Conn, now: datetime, req: pb.DebitRequest) -> pb.DebitResponse:
        adjustment = req.kind == pb.TRANSFER_KIND_ADJUSTMENT
        spent = await self._spend(
            conn,
            now,
            req,
            "ADJUSTMENT" if adjustment else "SPEND",
            ADJUSTMENT if adjustment else REDEMPTION,
        )
        assert spent.transfer is not None
        return pb.DebitResponse(
            transfer=convert.transfer(spent.transfer),
            allocations=convert.allocations(spent.taken),
        )

    async def hold(self, conn: Conn, now: datetime, req: pb.HoldRequest) -> pb.HoldResponse:
        deadline = from_timestamp(req.deadline_time)
        if deadline <= now:
            raise InvalidArgument.fields([FieldViolation("deadline_time", "must be in the future")])
        hold_id = await holds_repo.next_hold_id(conn)
        spent = await self._spend(conn, now, req, "HOLD", HOLDS, hold_id)
        assert spent.transfer is not None
        hold = await holds_repo.insert_hold(
            conn, req.user_id, hold_id, spent.transfer["transfer_id"], req.amount, deadline
        )
        return pb.HoldResponse(hold=convert.hold(hold))

    async def _active_hold(self, conn: Conn, user_id: str, hold_id: str) -> asyncpg.Record:
        hold = await holds_repo.get_hold(conn, user_id, int(hold_id))
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
        self, conn: Conn, now: datetime, hold: asyncpg.Record, status: str, request_id: str
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
        await self._give_back(
            conn, now, user_id, amount, hold["hold_transfer_id"], row["transfer_id"]
        )
        resolved = await holds_repo.resolve_hold(conn, user_id, hold["hold_id"], status, 0, amount)
        await repo.adjust_member(conn, user_id, balance=amount, held=-amount)
        return resolved, row

    async def _give_back(
        self,
        conn: Conn,
        now: datetime,
        user_id: str,
        amount: int,
        origin: int,
        transfer_id: int,
    ) -> list[repo.Taken]:
        """Return points to their lots; those whose lot already expired get the grace expiry."""
        return await repo.give_back(
            conn, user_id, amount, origin, transfer_id, now, now + self.config.refund_grace
        )

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
            await self._give_back(
                conn, now, req.user_id, rest, hold["hold_transfer_id"], release["transfer_id"]
            )
            response.release.CopyFrom(convert.transfer(release))
        resolved = await holds_repo.resolve_hold(
            conn, req.user_id, hold["hold_id"], "CAPTURED", captured, rest
        )
        await repo.adjust_member(conn, req.user_id, held=-amount, balance=rest, spent=captured)
        response.hold.CopyFrom(convert.hold(resolved))
        return response

    async def release_hold(
        self, conn: Conn, now: datetime, req: pb.ReleaseHoldRequest
    ) -> pb.ReleaseHoldResponse:
        hold = await self._active_hold(conn, req.user_id, req.hold_id)
        resolved, release = await self.release_hold_row(conn, now, hold, "RELEASED", req.request_id)
        return pb.ReleaseHoldResponse(
            hold=convert.hold(resolved), release=convert.transfer(release)
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
            response = await self._refund(conn, now, req, original, original["transfer_id"])
        elif kind == "CAPTURE":
            response = await self._refund(conn, now, req, original, original["related_transfer_id"])
        else:
            raise FailedPrecondition(
                "TRANSFER_NOT_REVERSIBLE",
                f"a {kind} transfer cannot be reversed",
                {"transfer_id": req.transfer_id, "kind": kind},
            )
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
        now: datetime,
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
            returned = await self._give_back(
                conn, now, req.user_id, amount, origin, row["transfer_id"]
            )
            await repo.adjust_member(conn, req.user_id, balance=amount, spent=-amount)
            response.reversal.CopyFrom(convert.transfer(row))
            response.allocations.extend(convert.allocations(returned, sign=-1))
        return response
