#!/usr/bin/env python3
"""A demo loyalty program, to try the suite after `make run` (the tests run against it too).

    .venv/bin/python -m scripts.demo_program          # rules on 127.0.0.1:50052
    RULES_ADDR=host:port .venv/bin/python -m scripts.demo_program

Defines: a 7-day check-in table; likes (1 point, 5 a day) and shares (2 points, 10 a day)
sharing an "activity" cap of 8 a day; purchases (10 points per full 50 yuan, pending 7 days);
lessons (50 points each, once per lesson); a 200-point new-user bonus (expires in 30 days).
"""

from __future__ import annotations

import asyncio
from typing import TypeAlias

import grpc

from loyalty.rules.v1 import rules_pb2 as pb
from loyalty.rules.v1 import rules_pb2_grpc
from services.common.settings import peer_address

RulesStub: TypeAlias = "rules_pb2_grpc.RulesServiceAsyncStub"

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


async def main() -> None:
    async with grpc.aio.insecure_channel(peer_address("rules")) as channel:
        await define_program(rules_pb2_grpc.RulesServiceStub(channel))
    print(f"defined cap group 'activity' and rules: {', '.join(r.rule_id for r in PROGRAM)}")


if __name__ == "__main__":
    asyncio.run(main())
