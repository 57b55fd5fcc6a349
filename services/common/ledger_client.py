"""The ledger as rules and mall call it: typed calls, typed refusals (see `peers.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.ledger.v1 import ledger_pb2_grpc
from services.common import catalog
from services.common.peers import PeerClient, PeerRefused

SERVICE = catalog.LEDGER.full_name


class InsufficientPoints(PeerRefused):
    """The member's available points do not cover the amount (metadata "available")."""


class HoldGone(PeerRefused):
    """The hold can no longer be captured: released, expired at its deadline, or unknown."""


class HoldCaptured(PeerRefused):
    """The hold was already captured: its points are spent and cannot be released."""


class NotReversible(PeerRefused):
    """The transfer is unknown, not reversible, or has less left than asked."""


class KeyReused(PeerRefused):
    """The request id was used before for a different request."""


class InvalidRequest(PeerRefused):
    """The ledger refused the request's fields (a bug or an unchecked input on our side)."""


class LedgerClient(PeerClient["ledger_pb2_grpc.LedgerServiceAsyncStub"]):
    service = catalog.LEDGER
    stub_type = ledger_pb2_grpc.LedgerServiceStub
    refusals: ClassVar[Mapping[str, type[PeerRefused]]] = {
        "INSUFFICIENT_POINTS": InsufficientPoints,
        "HOLD_EXPIRED": HoldGone,
        "HOLD_ALREADY_RELEASED": HoldGone,
        "HOLD_NOT_FOUND": HoldGone,
        "HOLD_ALREADY_CAPTURED": HoldCaptured,
        "TRANSFER_NOT_FOUND": NotReversible,
        "TRANSFER_NOT_REVERSIBLE": NotReversible,
        "AMOUNT_EXCEEDS_REVERSIBLE": NotReversible,
        "IDEMPOTENCY_KEY_REUSED": KeyReused,
        "INVALID_ARGUMENT": InvalidRequest,
    }

    async def credit(self, request: lpb.CreditRequest) -> lpb.CreditResponse:
        return await self.call(self.stub.Credit, request)

    async def debit(self, request: lpb.DebitRequest) -> lpb.DebitResponse:
        return await self.call(self.stub.Debit, request)

    async def hold(self, request: lpb.HoldRequest) -> lpb.HoldResponse:
        return await self.call(self.stub.Hold, request)

    async def capture_hold(self, request: lpb.CaptureHoldRequest) -> lpb.CaptureHoldResponse:
        return await self.call(self.stub.CaptureHold, request)

    async def release_hold(self, request: lpb.ReleaseHoldRequest) -> lpb.ReleaseHoldResponse:
        return await self.call(self.stub.ReleaseHold, request)

    async def reverse(self, request: lpb.ReverseRequest) -> lpb.ReverseResponse:
        return await self.call(self.stub.Reverse, request)

    async def post_batch(self, request: lpb.PostBatchRequest) -> lpb.PostBatchResponse:
        return await self.call(self.stub.PostBatch, request)

    async def get_balance(self, user_id: str) -> lpb.Balance:
        reply = await self.call(self.stub.GetBalance, lpb.GetBalanceRequest(user_id=user_id))
        return reply.balance

    async def find_spenders(self, request: lpb.FindSpendersRequest) -> set[str]:
        reply = await self.call(self.stub.FindSpenders, request)
        return set(reply.user_ids)
