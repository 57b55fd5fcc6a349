"""Small helpers for calling the rules service in tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from loyalty.common.v1 import common_pb2
from loyalty.rules.v1 import rules_pb2 as pb
from loyalty.rules.v1 import rules_pb2_grpc
from scripts.demo_program import PROGRAM, define_program  # the program tests run against

RulesStub: TypeAlias = "rules_pb2_grpc.RulesServiceAsyncStub"


def event(
    user: str,
    kind: pb.EventType.ValueType,
    *,
    days_ago: float | None = None,
    event_id: str | None = None,
    amount_minor: int = 0,
    order_id: str = "",
    item_id: str = "",
    device_id: str = "",
    ip: str = "",
) -> pb.RecordEventRequest:
    message = pb.Event(
        event_id=event_id or uuid.uuid4().hex,
        user_id=user,
        type=kind,
        order_id=order_id,
        item_id=item_id,
        device_id=device_id,
        ip=ip,
    )
    if amount_minor:
        message.amount.CopyFrom(common_pb2.Money(amount_minor=amount_minor, currency="CNY"))
    if days_ago is not None:
        message.occurred_at.FromDatetime(datetime.now(UTC) - timedelta(days=days_ago))
    return pb.RecordEventRequest(event=message)


__all__ = ["PROGRAM", "RulesStub", "define_program", "event"]
