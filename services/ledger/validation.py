"""Request validation: every problem becomes a field violation, all reported at once."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from google.protobuf.message import Message

from loyalty.ledger.v1 import ledger_pb2 as pb
from services.common import validation

MAX_METADATA_ENTRIES = 32
MAX_METADATA_VALUE = 1024
_SOURCE = re.compile(r"^[a-z0-9][a-z0-9_:.-]{0,63}$")
_ID = re.compile(r"^[1-9][0-9]{0,18}$")


class Checker(validation.Checker):
    """The chassis' checker with the ledger's own fields."""

    def amount(self, value: int, *, zero_allowed: bool = False) -> None:
        self.points("amount", value, zero_allowed=zero_allowed)

    def ledger_id(self, value: str, field: str) -> None:
        if not _ID.match(value):
            self.fail(field, "must be an id returned by the ledger")

    def metadata(self, value: Mapping[str, str]) -> None:
        if len(value) > MAX_METADATA_ENTRIES:
            self.fail("metadata", f"at most {MAX_METADATA_ENTRIES} entries")
        if any("\x00" in k + v for k, v in value.items()):
            self.fail("metadata", "must not contain NUL characters")
        if any(len(k) > 64 or len(v) > MAX_METADATA_VALUE for k, v in value.items()):
            self.fail("metadata", f"keys at most 64, values at most {MAX_METADATA_VALUE} chars")

    def kind(
        self, value: pb.TransferKind.ValueType, allowed: Iterable[pb.TransferKind.ValueType]
    ) -> None:
        allowed = tuple(allowed)
        if value != pb.TRANSFER_KIND_UNSPECIFIED and value not in allowed:
            names = ", ".join(pb.TransferKind.Name(k) for k in allowed)
            self.fail("kind", f"must be one of {names}")


def _mutation(request: Message, checker: Checker) -> None:
    checker.request_id(request.request_id)  # type: ignore[attr-defined]
    checker.user_id(request.user_id)  # type: ignore[attr-defined]
    reason_code: str = getattr(request, "reason_code", "")
    checker.require(
        len(reason_code) <= 64 and "\x00" not in reason_code,
        "reason_code",
        "at most 64 characters, no NUL characters",
    )


def check_credit(request: pb.CreditRequest) -> None:
    c = Checker()
    _mutation(request, c)
    c.amount(request.amount)
    if not _SOURCE.match(request.source):
        c.fail("source", "is required: lower-case letters, digits, ':', '_', '.', '-' (max 64)")
    c.kind(request.kind, (pb.TRANSFER_KIND_EARN, pb.TRANSFER_KIND_ADJUSTMENT))
    c.metadata(request.metadata)
    c.done()


def check_debit(request: pb.DebitRequest) -> None:
    c = Checker()
    _mutation(request, c)
    c.amount(request.amount)
    c.kind(request.kind, (pb.TRANSFER_KIND_SPEND, pb.TRANSFER_KIND_ADJUSTMENT))
    c.metadata(request.metadata)
    c.done()


def check_hold(request: pb.HoldRequest) -> None:
    c = Checker()
    _mutation(request, c)
    c.amount(request.amount)
    if not request.HasField("deadline_time"):
        c.fail("deadline_time", "is required")
    c.metadata(request.metadata)
    c.done()


def check_capture(request: pb.CaptureHoldRequest) -> None:
    c = Checker()
    _mutation(request, c)
    c.ledger_id(request.hold_id, "hold_id")
    c.amount(request.amount, zero_allowed=True)
    c.done()


def check_release(request: pb.ReleaseHoldRequest) -> None:
    c = Checker()
    _mutation(request, c)
    c.ledger_id(request.hold_id, "hold_id")
    c.done()


def check_reverse(request: pb.ReverseRequest) -> None:
    c = Checker()
    _mutation(request, c)
    c.ledger_id(request.transfer_id, "transfer_id")
    c.amount(request.amount, zero_allowed=True)
    c.metadata(request.metadata)
    c.done()


def check_expiring_days(value: int) -> None:
    c = Checker()
    c.require(0 <= value <= 3660, "expiring_within_days", "must be between 0 and 3660")
    c.done()
