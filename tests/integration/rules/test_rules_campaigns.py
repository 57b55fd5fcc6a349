"""Campaigns and budgets: extra points in a window, exact budgets under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.timestamps import to_timestamp
from tests.support.events import program_events
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import audit_clean, balance
from tests.support.rules_calls import RulesStub, event

NOW = datetime.now(UTC)


@pytest.fixture(scope="module", autouse=True)
async def online_rule(rules: RulesStub) -> None:
    await define_online_rule(rules)


async def define_online_rule(rules: RulesStub) -> None:
    """Online time: 2 points per 30 minutes (the campaigns here multiply or add to it)."""
    await rules.UpsertRule(
        pb.UpsertRuleRequest(
            rule=pb.Rule(
                rule_id="online",
                kind=pb.RULE_KIND_ONLINE_TIME,
                event_type=pb.EVENT_TYPE_ONLINE_TIME,
                enabled=True,
                online_time=pb.OnlineTimeParams(points=2, per_minutes=30),
                weekly_cap=1000,
            )
        )
    )


def online(user: str, minutes: int) -> pb.RecordEventRequest:
    request = event(user, pb.EVENT_TYPE_ONLINE_TIME)
    request.event.minutes = minutes
    return request


async def campaign(rules: RulesStub, **fields: object) -> str:
    campaign_id = f"camp-{uuid.uuid4().hex[:8]}"
    values: dict[str, object] = {
        "start_time": to_timestamp(NOW - timedelta(hours=1)),
        "end_time": to_timestamp(NOW + timedelta(hours=1)),
        "event_types": [pb.EVENT_TYPE_ONLINE_TIME],
        "enabled": True,
        **fields,
    }
    message = pb.Campaign(
        campaign_id=campaign_id,
        **values,  # type: ignore[arg-type]
    )
    await rules.UpsertCampaign(pb.UpsertCampaignRequest(campaign=message))
    return campaign_id


async def test_budget_caps_campaign_points_exactly_under_concurrency(
    rules: RulesStub, ledger: LedgerStub, database_url: str
) -> None:
    budget_id = f"budget-{uuid.uuid4().hex[:8]}"
    await rules.UpsertBudget(
        pb.UpsertBudgetRequest(
            budget=pb.Budget(
                budget_id=budget_id,
                period=pb.BUDGET_PERIOD_TOTAL,
                points_limit=100,
                over_budget=pb.OVER_BUDGET_CUT,
            )
        )
    )
    camp = await campaign(rules, bonus_points=7, budget_id=budget_id)
    users = [f"camp-user-{uuid.uuid4().hex[:8]}" for _ in range(50)]
    replies = await asyncio.gather(*(rules.RecordEvent(online(u, 60)) for u in users))
    extra = sum(r.awards[0].campaign_points for r in replies)
    assert extra == 100  # 50 × 7 = 350 wanted; the budget allowed exactly 100
    assert all(r.awards[0].points >= 4 for r in replies)  # base points are never cut
    cut = [r.awards[0] for r in replies if r.awards[0].capped_by == f"budget:{budget_id}"]
    assert cut
    usage = {
        u.budget.budget_id: u.used_points
        for u in (await rules.ListBudgets(pb.ListBudgetsRequest())).budgets
    }
    assert usage[budget_id] == 100
    total = sum([(await balance(ledger, u)).available for u in users])
    assert total == 50 * 4 + 100
    # Of 50 concurrent events, exactly one announced the budget's exhaustion.
    announced = await program_events(database_url, "rules", "budget.exhausted")
    mine = [e["data"] for e in announced if e["data"]["budget_id"] == budget_id]
    assert mine == [{"budget_id": budget_id, "period_key": "total", "limit": 100}]
    await rules.UpsertCampaign(
        pb.UpsertCampaignRequest(
            campaign=pb.Campaign(
                campaign_id=camp,
                start_time=to_timestamp(NOW - timedelta(hours=2)),
                end_time=to_timestamp(NOW - timedelta(hours=1)),
                event_types=[pb.EVENT_TYPE_LIKE],
                bonus_points=1,
                enabled=False,
            )
        )
    )  # retire it so other tests see no bonus
    await audit_clean(ledger)


async def test_multiplier_campaign_for_new_users(rules: RulesStub, user: str) -> None:
    camp = await campaign(
        rules, multiplier_percent=200, audience=pb.AUDIENCE_NEW_USERS, new_user_days=7
    )
    reply = await rules.RecordEvent(online(user, 90))
    [award] = reply.awards
    assert (award.base_points, award.campaign_points, award.points) == (6, 6, 12)
    assert list(award.campaign_ids) == [camp]
    await rules.UpsertCampaign(
        pb.UpsertCampaignRequest(
            campaign=pb.Campaign(
                campaign_id=camp,
                start_time=to_timestamp(NOW - timedelta(hours=2)),
                end_time=to_timestamp(NOW - timedelta(hours=1)),
                event_types=[pb.EVENT_TYPE_LIKE],
                bonus_points=1,
                enabled=False,
            )
        )
    )


async def test_global_budget_refuses_what_would_exceed_it(rules: RulesStub, user: str) -> None:
    budget_id = f"global-{uuid.uuid4().hex[:8]}"
    used_before = {
        u.budget.budget_id: u.used_points
        for u in (await rules.ListBudgets(pb.ListBudgetsRequest())).budgets
    }
    assert budget_id not in used_before
    await rules.UpsertBudget(
        pb.UpsertBudgetRequest(
            budget=pb.Budget(
                budget_id=budget_id,
                applies_to_all=True,
                period=pb.BUDGET_PERIOD_DAY,
                points_limit=10,
                over_budget=pb.OVER_BUDGET_REFUSE,
            )
        )
    )
    try:
        first = await rules.RecordEvent(online(user, 240))  # 16 points > 10: refused whole
        assert (first.total_points, first.awards[0].capped_by) == (0, f"budget:{budget_id}")
        second = await rules.RecordEvent(online(user, 120))  # 8 points fit
        assert second.total_points == 8
    finally:  # a global budget would limit every other test: lift it
        await rules.UpsertBudget(
            pb.UpsertBudgetRequest(
                budget=pb.Budget(
                    budget_id=budget_id,
                    applies_to_all=True,
                    period=pb.BUDGET_PERIOD_DAY,
                    points_limit=10**15,
                    over_budget=pb.OVER_BUDGET_CUT,
                )
            )
        )


async def test_campaign_and_budget_changes_are_versioned(rules: RulesStub) -> None:
    budget = pb.Budget(
        budget_id=f"v-{uuid.uuid4().hex[:8]}", period=pb.BUDGET_PERIOD_TOTAL, points_limit=10
    )
    first = (await rules.UpsertBudget(pb.UpsertBudgetRequest(budget=budget))).budget
    budget.points_limit = 20
    second = (await rules.UpsertBudget(pb.UpsertBudgetRequest(budget=budget))).budget
    assert (first.version, second.version) == (1, 2)
    listed = {
        u.budget.budget_id: u.budget
        for u in (await rules.ListBudgets(pb.ListBudgetsRequest())).budgets
    }
    assert (listed[budget.budget_id].points_limit, listed[budget.budget_id].version) == (20, 2)
    camp = await campaign(rules, bonus_points=1, enabled=False)
    stored = {
        c.campaign_id: c for c in (await rules.ListCampaigns(pb.ListCampaignsRequest())).campaigns
    }
    assert stored[camp].version == 1
