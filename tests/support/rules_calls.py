"""Small helpers for calling the rules service in tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from loyalty.common.v1 import common_pb2
from loyalty.rules.v1 import rules_pb2 as pb
from loyalty.rules.v1 import rules_pb2_grpc

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


# The demo program the integration tests run against (rules are global to the service).
PROGRAM = [
    pb.Rule(
        rule_id="daily-check-in",
        kind=pb.RULE_KIND_CHECK_IN,
        event_type=pb.EVENT_TYPE_CHECK_IN,
        enabled=True,
        check_in=pb.CheckInParams(streak_points=[5, 5, 10, 10, 15, 15, 30]),
    ),
    pb.Rule(
        rule_id="like",
        kind=pb.RULE_KIND_ACTION,
        event_type=pb.EVENT_TYPE_LIKE,
        enabled=True,
        action=pb.ActionParams(points=1),
        daily_cap=5,
        cap_group="activity",
    ),
    pb.Rule(
        rule_id="share",
        kind=pb.RULE_KIND_ACTION,
        event_type=pb.EVENT_TYPE_SHARE,
        enabled=True,
        action=pb.ActionParams(points=2),
        daily_cap=10,
        cap_group="activity",
    ),
    pb.Rule(
        rule_id="purchase",
        kind=pb.RULE_KIND_PURCHASE,
        event_type=pb.EVENT_TYPE_PURCHASE,
        enabled=True,
        purchase=pb.PurchaseParams(
            points=10, per_amount_minor=5000, currency="CNY", pending_days=7
        ),
    ),
    pb.Rule(
        rule_id="lesson",
        kind=pb.RULE_KIND_TASK,
        event_type=pb.EVENT_TYPE_LESSON_COMPLETED,
        enabled=True,
        task=pb.TaskParams(points=50, per_item=True),
    ),
    pb.Rule(
        rule_id="new-user",
        kind=pb.RULE_KIND_TASK,
        event_type=pb.EVENT_TYPE_REGISTER,
        enabled=True,
        task=pb.TaskParams(points=200),
        expiry_days=30,
    ),
]


async def define_program(rules: RulesStub) -> None:
    await rules.UpsertCapGroup(pb.UpsertCapGroupRequest(name="activity", daily_cap=8))
    for rule in PROGRAM:
        await rules.UpsertRule(pb.UpsertRuleRequest(rule=rule))
