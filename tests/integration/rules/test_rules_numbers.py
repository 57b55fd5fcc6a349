"""The numbers an operator's console shows agree with the ledger: points in review are not yet
issued and make no tier, campaign costs add up, a tier's year counts events by when they
happened, a decided review says so, and a refund that drops the tier says that too.

On a database of its own: tiers and campaigns are program-wide and would change other tests'
awards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest

from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.rules.v1 import rules_pb2 as pb
from loyalty.rules.v1 import rules_pb2_grpc
from services.common.timestamps import to_timestamp
from services.ledger.server import SPEC as LEDGER
from services.rules.server import SPEC as RULES
from tests.support.hosts import running
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import balance, fails
from tests.support.rules_calls import RulesStub, event


@dataclass
class Program:
    rules: RulesStub
    ledger: LedgerStub


@pytest.fixture
async def program(private_database: str) -> AsyncIterator[Program]:
    async with running(LEDGER, private_database) as ledger_host:
        env = {
            "LEDGER_ADDR": f"127.0.0.1:{ledger_host.port}",
            "RULES_SETTLE_SECONDS": "0.1",
            "RULES_ACCOUNTS_PER_DEVICE": "2",  # the second account on a device is reviewed
            "RULES_POINTS_PER_MAJOR_UNIT": "100",  # 100 points cost 1 yuan
            "RULES_MAX_EVENT_AGE_DAYS": "400",  # a late import of last year's purchases
        }
        async with (
            running(RULES, private_database, env) as rules_host,
            grpc.aio.insecure_channel(f"127.0.0.1:{rules_host.port}") as rchannel,
            grpc.aio.insecure_channel(f"127.0.0.1:{ledger_host.port}") as lchannel,
        ):
            rules = rules_pb2_grpc.RulesServiceStub(rchannel)
            for tier in (
                pb.Tier(tier_id="bronze", name="Bronze", min_points_12m=0, multiplier_percent=100),
                pb.Tier(
                    tier_id="silver", name="Silver", min_points_12m=500, multiplier_percent=150
                ),
            ):
                await rules.UpsertTier(pb.UpsertTierRequest(tier=tier))
            await rules.UpsertRule(
                pb.UpsertRuleRequest(
                    rule=pb.Rule(
                        rule_id="spend",
                        kind=pb.RULE_KIND_PURCHASE,
                        event_type=pb.EVENT_TYPE_PURCHASE,
                        enabled=True,
                        purchase=pb.PurchaseParams(points=1, per_amount_minor=100, currency="CNY"),
                    )
                )
            )
            yield Program(rules, ledger_pb2_grpc.LedgerServiceStub(lchannel))


def purchase(user: str, yuan: int, **fields: object) -> pb.RecordEventRequest:
    return event(
        user,
        pb.EVENT_TYPE_PURCHASE,
        amount_minor=yuan * 100,
        order_id=uuid.uuid4().hex[:12],
        **fields,  # type: ignore[arg-type]
    )


async def report_since(rules: RulesStub, start: datetime) -> pb.GetIssuanceReportResponse:
    request = pb.GetIssuanceReportRequest()
    request.time_range.start_time.CopyFrom(to_timestamp(start))
    return await rules.GetIssuanceReport(request)


async def credited(ledger: LedgerStub, user: str, points: int) -> None:
    for _ in range(100):
        if (await balance(ledger, user)).available == points:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{user} never reached {points} points")


async def test_points_in_review_are_neither_issued_nor_counted_for_a_tier(
    program: Program,
) -> None:
    rules, start = program.rules, datetime.now(UTC)
    device = f"shared-{uuid.uuid4().hex[:8]}"
    first, second = (f"rev-{uuid.uuid4().hex[:8]}" for _ in range(2))
    await rules.RecordEvent(purchase(first, 100, device_id=device))
    held = await rules.RecordEvent(purchase(second, 1000, device_id=device))
    assert (held.decision, held.total_points, held.new_tier_id) == (
        pb.DECISION_REVIEW,
        1000,
        "bronze",  # the award in review does not make the member silver
    )
    await credited(program.ledger, first, 100)
    report = await report_since(rules, start)
    assert (report.points_issued, report.points_in_review) == (100, 1000)
    assert (report.cost.amount_minor, [(r.id, r.points) for r in report.by_rule]) == (
        100,
        [("spend", 100)],
    )
    assert (await rules.GetUserTier(pb.GetUserTierRequest(user_id=second))).points_12m == 0
    listed = await rules.ListUserEvents(pb.ListUserEventsRequest(user_id=second))
    assert [e.review for e in listed.events] == [pb.REVIEW_STATUS_PENDING]

    await rules.ApproveReview(pb.ApproveReviewRequest(user_id=second, event_id=held.event_id))
    await credited(program.ledger, second, 1000)
    report = await report_since(rules, start)
    assert (report.points_issued, report.points_in_review) == (1100, 0)
    tier = await rules.GetUserTier(pb.GetUserTierRequest(user_id=second))
    assert (tier.tier.tier_id, tier.points_12m) == ("silver", 1000)
    assert (tier.changes[0].from_tier_id, tier.changes[0].to_tier_id) == ("bronze", "silver")
    listed = await rules.ListUserEvents(pb.ListUserEventsRequest(user_id=second))
    assert [e.review for e in listed.events] == [pb.REVIEW_STATUS_APPROVED]
    first_events = await rules.ListUserEvents(pb.ListUserEventsRequest(user_id=first))
    assert [e.review for e in first_events.events] == [pb.REVIEW_STATUS_UNSPECIFIED]


async def test_campaign_costs_add_up_to_the_extra_points_issued(program: Program) -> None:
    rules, start = program.rules, datetime.now(UTC)
    window = {
        "start_time": to_timestamp(start - timedelta(minutes=1)),
        "end_time": to_timestamp(start + timedelta(hours=1)),
        "event_types": [pb.EVENT_TYPE_PURCHASE],
        "enabled": True,
    }
    double, bonus = f"double-{uuid.uuid4().hex[:6]}", f"bonus-{uuid.uuid4().hex[:6]}"
    await rules.UpsertCampaign(
        pb.UpsertCampaignRequest(
            campaign=pb.Campaign(campaign_id=double, multiplier_percent=200, **window)  # type: ignore[arg-type]
        )
    )
    await rules.UpsertCampaign(
        pb.UpsertCampaignRequest(
            campaign=pb.Campaign(campaign_id=bonus, bonus_points=20, **window)  # type: ignore[arg-type]
        )
    )
    user = f"camp-{uuid.uuid4().hex[:8]}"
    bronze = await rules.RecordEvent(purchase(user, 100))
    award = bronze.awards[0]
    # Base 100, doubled (+100), a 20-point bonus: 220, the extra split as it arose.
    assert (award.points, award.campaign_points, award.tier_points) == (220, 120, 0)
    assert dict(zip(award.campaign_ids, award.campaign_shares, strict=True)) == {
        double: 100,
        bonus: 20,
    }
    second = await rules.RecordEvent(purchase(user, 200))
    assert (second.total_points, second.new_tier_id) == (420, "silver")  # 640 in the year
    # Silver multiplies by 1.5 on top of the campaigns: 250 % and the bonus, 270 points.
    silver = (await rules.RecordEvent(purchase(user, 100))).awards[0]
    assert (silver.points, silver.campaign_points, silver.tier_points) == (270, 170, 50)
    assert list(silver.campaign_shares) == [
        {double: 100, bonus: 20}[c] for c in silver.campaign_ids
    ]
    await credited(program.ledger, user, 910)
    report = await report_since(rules, start)
    by_campaign = {r.id: r.points for r in report.by_campaign}
    assert by_campaign == {double: 400, bonus: 60}
    extra = sum(a.campaign_points for a in (award, *second.awards, silver))
    assert sum(by_campaign.values()) + report.tier_points == extra
    assert report.points_issued == 910 == (await balance(program.ledger, user)).lifetime_earned
    assert {r.id: r.cost.amount_minor for r in report.by_campaign} == {double: 400, bonus: 60}


async def test_a_tier_year_counts_events_by_when_they_happened(program: Program) -> None:
    user = f"late-{uuid.uuid4().hex[:8]}"
    late = await program.rules.RecordEvent(purchase(user, 1000, days_ago=366))
    assert late.total_points == 1000  # earned in full...
    tier = await program.rules.GetUserTier(pb.GetUserTierRequest(user_id=user))
    assert (tier.tier.tier_id, tier.points_12m) == ("bronze", 0)  # ...but a year too late


async def test_a_refund_that_drops_the_tier_says_so(program: Program) -> None:
    user = f"refund-{uuid.uuid4().hex[:8]}"
    bought = purchase(user, 600)
    assert (await program.rules.RecordEvent(bought)).new_tier_id == "silver"
    await credited(program.ledger, user, 600)
    refund = event(user, pb.EVENT_TYPE_REFUND, order_id=bought.event.order_id)
    refunded = await program.rules.RecordEvent(refund)
    assert (refunded.reversed_points, refunded.new_tier_id) == (600, "bronze")


async def test_a_draft_campaign_is_costed_beside_the_program_in_force(program: Program) -> None:
    user = f"sim-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    draft = pb.Campaign(
        campaign_id="draft-double",
        start_time=to_timestamp(now - timedelta(hours=1)),
        end_time=to_timestamp(now + timedelta(hours=1)),
        event_types=[pb.EVENT_TYPE_PURCHASE],
        multiplier_percent=200,
        enabled=True,
    )
    events = [purchase(user, 100).event, purchase(user, 50).event]
    preview = await program.rules.SimulateEvents(
        pb.SimulateEventsRequest(events=events, draft_campaigns=[draft])
    )
    assert (preview.draft.total_points, preview.current.total_points) == (300, 150)
    assert [(c.id, c.points, c.cost.amount_minor) for c in preview.draft.by_campaign] == [
        ("draft-double", 150, 150)  # 100 points cost 1 yuan
    ]
    assert list(preview.current.by_campaign) == []
    listed = await program.rules.ListCampaigns(pb.ListCampaignsRequest())
    assert "draft-double" not in [c.campaign_id for c in listed.campaigns]  # never saved
    bad = await fails(
        program.rules.SimulateEvents(
            pb.SimulateEventsRequest(
                events=events, draft_campaigns=[pb.Campaign(campaign_id="Bad Id")]
            )
        )
    )
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
    assert all(v.field.startswith("draft_campaigns[0].") for v in bad.violations)


async def test_recent_traffic_replays_beside_a_draft(
    program: Program, private_database: str
) -> None:
    """The last day's recorded events, replayed as fresh members under a draft and under the
    program in force; an event recorded before bodies were kept is rebuilt from its columns."""
    rules = program.rules
    buyer = f"buyer-{uuid.uuid4().hex[:8]}"
    for yuan in (100, 300):
        await rules.RecordEvent(purchase(buyer, yuan))
    await rules.RecordEvent(event(buyer, pb.EVENT_TYPE_LIKE))  # no rule: earns nothing
    await credited(program.ledger, buyer, 400)
    conn = await asyncpg.connect(private_database, server_settings={"search_path": "rules"})
    try:  # the oldest purchase as recorded before event bodies were kept
        await conn.execute(
            "UPDATE events SET event = NULL WHERE event_id = ("
            "SELECT event_id FROM events ORDER BY recorded_at LIMIT 1)"
        )
    finally:
        await conn.close()
    now = datetime.now(UTC)
    draft = pb.Campaign(
        campaign_id="replayed-double",
        start_time=to_timestamp(now - timedelta(days=2)),
        end_time=to_timestamp(now + timedelta(hours=1)),
        event_types=[pb.EVENT_TYPE_PURCHASE],
        multiplier_percent=200,
        enabled=True,
    )
    replay = await rules.SimulateEvents(
        pb.SimulateEventsRequest(replay_days=1, draft_campaigns=[draft])
    )
    assert len(replay.results) == 3
    # The buyer's 400 points in force, 800 with the draft doubling purchases.
    assert (replay.current.total_points, replay.draft.total_points) == (400, 800)
    assert [(c.id, c.points) for c in replay.draft.by_campaign] == [("replayed-double", 400)]
    assert (await balance(program.ledger, buyer)).available == 400  # a replay credits nothing
    listed = await rules.ListUserEvents(pb.ListUserEventsRequest(user_id=buyer))
    assert len(listed.events) == 3  # and records nothing
    error = await fails(
        rules.SimulateEvents(
            pb.SimulateEventsRequest(replay_days=1, events=[purchase(buyer, 1).event])
        )
    )
    assert [v.field for v in error.violations] == ["events"]
    error = await fails(rules.SimulateEvents(pb.SimulateEventsRequest(replay_days=31)))
    assert [v.field for v in error.violations] == ["replay_days"]
