"""Database rows to protobuf messages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from loyalty.ledger.v1 import ledger_pb2 as pb
from services.common.timestamps import to_timestamp
from services.ledger.repository import Taken


def kind_name(kind: pb.TransferKind.ValueType) -> str:
    return pb.TransferKind.Name(kind).removeprefix("TRANSFER_KIND_")


def kind_value(name: str) -> pb.TransferKind.ValueType:
    return pb.TransferKind.Value(f"TRANSFER_KIND_{name}")


def transfer(
    row: asyncpg.Record,
    expire_time: datetime | None = None,
    mature_time: datetime | None = None,
) -> pb.Transfer:
    metadata = row["metadata"]
    message = pb.Transfer(
        transfer_id=str(row["transfer_id"]),
        user_id=row["user_id"],
        kind=kind_value(row["kind"]),
        amount=row["amount"],
        debit_account=row["debit_account"],
        credit_account=row["credit_account"],
        reason_code=row["reason_code"],
        metadata=json.loads(metadata) if isinstance(metadata, str) else metadata,
        request_id=row["request_id"],
        related_transfer_id=str(row["related_transfer_id"] or ""),
        hold_id=str(row["hold_id"] or ""),
        create_time=to_timestamp(row["created_at"]),
    )
    if expire_time is not None:
        message.expire_time.CopyFrom(to_timestamp(expire_time))
    if mature_time is not None:
        message.mature_time.CopyFrom(to_timestamp(mature_time))
    return message


def allocations(taken: Sequence[Taken], sign: int = 1) -> list[pb.Allocation]:
    return [
        pb.Allocation(
            lot_id=str(t.lot_id), amount=sign * t.amount, expire_time=to_timestamp(t.expires_at)
        )
        for t in taken
    ]


_HOLD_STATUS = {
    "ACTIVE": pb.HOLD_STATUS_ACTIVE,
    "CAPTURED": pb.HOLD_STATUS_CAPTURED,
    "RELEASED": pb.HOLD_STATUS_RELEASED,
    "EXPIRED": pb.HOLD_STATUS_EXPIRED,
}


def hold(row: asyncpg.Record) -> pb.Hold:
    status = "EXPIRED" if row["status"] == "ACTIVE" and row["overdue"] else row["status"]
    return pb.Hold(
        hold_id=str(row["hold_id"]),
        user_id=row["user_id"],
        amount=row["amount"],
        captured=row["captured"],
        released=row["released"],
        status=_HOLD_STATUS[status],
        deadline_time=to_timestamp(row["deadline_at"]),
        create_time=to_timestamp(row["created_at"]),
        hold_transfer_id=str(row["hold_transfer_id"]),
    )


def balance(row: asyncpg.Record, expiring: Sequence[tuple[str, int]]) -> pb.Balance:
    return pb.Balance(
        user_id=row["user_id"],
        available=row["lots_available"] + row["overdue"],
        pending=row["pending"],
        held=row["held"],
        lifetime_earned=row["earned"],
        lifetime_spent=row["spent"],
        lifetime_expired=row["expired"],
        lifetime_reversed=row["reversed"],
        expiring=[pb.ExpiringPoints(date=day, amount=amount) for day, amount in expiring],
        as_of_time=to_timestamp(row["as_of"]),
        changed_time=to_timestamp(row["changed_at"]) if row["changed_at"] else None,
    )
