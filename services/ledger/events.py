"""The ledger's events (see `services/common/outbox.py` and `events/`): what each newly applied
transfer means to a member, written in the transaction that applied it."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from loyalty.ledger.v1 import ledger_pb2 as pb
from services.common.outbox import Event
from services.common.timestamps import from_timestamp, rfc3339
from services.ledger.measures import transfers_of
from services.ledger.operations import MEMBER

TYPES = {
    pb.TRANSFER_KIND_EARN: "points.credited",
    pb.TRANSFER_KIND_SPEND: "points.debited",
    pb.TRANSFER_KIND_CAPTURE: "points.debited",
    pb.TRANSFER_KIND_REVERSAL: "points.reversed",
}


def type_of(transfer: pb.Transfer) -> str | None:
    """The event a transfer means; an operator's adjustment is a credit or a debit by the side
    the member's account is on. Holds, releases and expiry have events of their own."""
    if transfer.kind == pb.TRANSFER_KIND_ADJUSTMENT:
        return "points.credited" if transfer.credit_account == MEMBER else "points.debited"
    return TYPES.get(transfer.kind)


def of_outcomes(outcomes: Iterable[Message]) -> list[Event]:
    typed = ((type_of(t), t) for outcome in outcomes for t in transfers_of(outcome))
    return [Event(kind, t.user_id, data_of(t)) for kind, t in typed if kind is not None]


def data_of(transfer: pb.Transfer) -> dict[str, object]:
    data: dict[str, object] = {
        "transfer_id": transfer.transfer_id,
        "amount": transfer.amount,
        "reason_code": transfer.reason_code,
    }
    if transfer.credit_account == MEMBER and transfer.kind != pb.TRANSFER_KIND_REVERSAL:
        data["source"] = transfer.debit_account.removeprefix("issuance:")
        if transfer.HasField("expire_time"):
            data["expires_at"] = _iso(transfer.expire_time)
        if transfer.HasField("mature_time"):
            data["matures_at"] = _iso(transfer.mature_time)
    if transfer.related_transfer_id:
        data["related_transfer_id"] = transfer.related_transfer_id
    return data


def _iso(stamp: Timestamp) -> str:
    return rfc3339(from_timestamp(stamp))
