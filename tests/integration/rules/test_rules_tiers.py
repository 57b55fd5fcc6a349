"""Tiers from points earned in the last 12 months: multipliers, progress, upgrades and
downgrades at evaluation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from loyalty.rules.v1 import rules_pb2 as pb
from tests.support.events import events_of
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import balance
from tests.support.rules_calls import RulesStub, event

TIERS = [
    pb.Tier(tier_id="bronze", name="Bronze", min_points_12m=0, multiplier_percent=100),
    pb.Tier(tier_id="silver", name="Silver", min_points_12m=500, multiplier_percent=150),
    pb.Tier(tier_id="gold", name="Gold", min_points_12m=2000, multiplier_percent=200),
]


@pytest.fixture
async def tiers(rules: RulesStub, database_url: str) -> AsyncIterator[None]:
    for tier in TIERS:
        await rules.UpsertTier(pb.UpsertTierRequest(tier=tier))
    await rules.UpsertRule(
        pb.UpsertRuleRequest(
            rule=pb.Rule(
                rule_id="big-task",
                kind=pb.RULE_KIND_TASK,
                event_type=pb.EVENT_TYPE_TASK_COMPLETED,
                enabled=True,
                task=pb.TaskParams(points=400, per_item=True),
            )
        )
    )
    yield
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "rules"})
    try:  # tiers multiply every award: leave none behind for other tests
        await conn.execute("DELETE FROM tiers")
    finally:
        await conn.close()


def task(user: str, item: str) -> pb.RecordEventRequest:
    return event(user, pb.EVENT_TYPE_TASK_COMPLETED, item_id=item)


@pytest.mark.usefixtures("tiers")
async def test_tiers_upgrade_multiply_and_downgrade(
    rules: RulesStub, ledger: LedgerStub, database_url: str, user: str
) -> None:
    first = await rules.RecordEvent(task(user, "a"))
    assert (first.total_points, first.new_tier_id) == (400, "bronze")
    second = await rules.RecordEvent(task(user, "b"))
    assert (second.total_points, second.new_tier_id) == (400, "silver")
    third = await rules.RecordEvent(task(user, "c"))  # silver earns 1.5 times
    assert (third.total_points, third.awards[0].campaign_points, third.new_tier_id) == (
        600,
        200,
        "",
    )
    status = await rules.GetUserTier(pb.GetUserTierRequest(user_id=user))
    assert (status.tier.tier_id, status.points_12m) == ("silver", 1400)
    assert (status.next_tier.tier_id, status.points_to_next) == ("gold", 600)
    assert [(c.from_tier_id, c.to_tier_id) for c in status.changes] == [
        ("bronze", "silver"),
        ("", "bronze"),
    ]
    assert (await balance(ledger, user)).available == 1400
    # A year later those points no longer count: the next evaluation downgrades.
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "rules"})
    try:
        await conn.execute(
            "UPDATE awards SET occurred_at = now() - interval '400 days', "
            "created_at = now() - interval '400 days' WHERE user_id = $1",
            user,
        )
    finally:
        await conn.close()
    later = await rules.GetUserTier(pb.GetUserTierRequest(user_id=user))
    assert (later.tier.tier_id, later.points_12m) == ("bronze", 0)
    assert (later.changes[0].from_tier_id, later.changes[0].to_tier_id) == ("silver", "bronze")
    listed = await rules.ListTiers(pb.ListTiersRequest())
    assert [t.tier_id for t in listed.tiers] == ["bronze", "silver", "gold"]
    # The wallet's single call agrees and, with the downgrade recorded, records nothing more.
    both = await rules.GetMemberStatus(pb.GetMemberStatusRequest(user_id=user))
    assert both.tier == later
    # Each move is an event for the member's other systems (a CRM, push notifications).
    moves = [e["data"] for e in await events_of(database_url, "rules", user)]
    assert [(m["from"], m["to"]) for m in moves] == [
        (None, "bronze"),
        ("bronze", "silver"),
        ("silver", "bronze"),
    ]
    assert both.check_in.today and not both.check_in.checked_in_today
