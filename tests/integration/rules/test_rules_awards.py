"""Events to awards against real rules and ledger servers: streaks, caps, purchases, tasks,
exactly-once crediting, and risk decisions."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from loyalty.common.v1 import common_pb2
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.rules.v1 import rules_pb2 as pb
from services.common.server import ServiceHost
from services.common.timestamps import to_timestamp
from tests.support.events import events_of
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import audit_clean, balance, fails
from tests.support.rules_calls import RulesStub, define_program, event


@pytest.fixture(scope="module", autouse=True)
async def program(rules: RulesStub) -> None:
    await define_program(rules)


async def test_check_in_streak_pays_the_table_and_once_a_day(
    rules: RulesStub, ledger: LedgerStub, user: str
) -> None:
    days = []
    for days_ago in (3, 2, 1, 0):
        reply = await rules.RecordEvent(event(user, pb.EVENT_TYPE_CHECK_IN, days_ago=days_ago))
        [award] = reply.awards
        days.append((award.streak_day, award.points))
    assert days == [(1, 5), (2, 5), (3, 10), (4, 10)]
    again = await rules.RecordEvent(event(user, pb.EVENT_TYPE_CHECK_IN))
    assert (again.awards[0].points, again.awards[0].reason) == (0, "ALREADY_CHECKED_IN")
    status = await rules.GetCheckInStatus(pb.GetCheckInStatusRequest(user_id=user))
    assert (status.streak, status.checked_in_today, status.next_points) == (4, True, 15)
    assert (await balance(ledger, user)).available == 30


async def test_missing_a_day_resets_the_streak(rules: RulesStub, user: str) -> None:
    await rules.RecordEvent(event(user, pb.EVENT_TYPE_CHECK_IN, days_ago=3))
    await rules.RecordEvent(event(user, pb.EVENT_TYPE_CHECK_IN, days_ago=2))
    reply = await rules.RecordEvent(event(user, pb.EVENT_TYPE_CHECK_IN))  # skipped yesterday
    assert (reply.awards[0].streak_day, reply.awards[0].points) == (1, 5)
    status = await rules.GetCheckInStatus(pb.GetCheckInStatusRequest(user_id=user))
    assert (status.streak, status.next_points) == (1, 5)


async def test_action_daily_cap(rules: RulesStub, ledger: LedgerStub, user: str) -> None:
    awards = [
        (await rules.RecordEvent(event(user, pb.EVENT_TYPE_LIKE))).awards[0] for _ in range(7)
    ]
    assert [a.points for a in awards] == [1, 1, 1, 1, 1, 0, 0]
    assert awards[5].capped_by == "rule_daily_cap"
    assert (await balance(ledger, user)).available == 5


async def test_cap_group_limits_actions_together(rules: RulesStub, user: str) -> None:
    for _ in range(5):
        await rules.RecordEvent(event(user, pb.EVENT_TYPE_LIKE))
    shares = [
        (await rules.RecordEvent(event(user, pb.EVENT_TYPE_SHARE))).awards[0] for _ in range(3)
    ]
    assert [(a.points, a.capped_by) for a in shares] == [
        (2, ""),
        (1, "group:activity"),
        (0, "group:activity"),
    ]


async def test_caps_hold_exactly_under_concurrency(
    rules: RulesStub, ledger: LedgerStub, user: str
) -> None:
    replies = await asyncio.gather(
        *(rules.RecordEvent(event(user, pb.EVENT_TYPE_LIKE)) for _ in range(25))
    )
    assert sum(r.total_points for r in replies) == 5
    assert (await balance(ledger, user)).available == 5


async def test_purchase_is_pending_and_a_refund_takes_it_back(
    rules: RulesStub, ledger: LedgerStub, user: str
) -> None:
    bought = await rules.RecordEvent(
        event(user, pb.EVENT_TYPE_PURCHASE, amount_minor=12345, order_id="o-1")
    )
    [award] = bought.awards
    assert (award.points, award.pending) == (20, True)  # two full 50-yuan steps
    current = await balance(ledger, user)
    assert (current.available, current.pending) == (0, 20)
    refunded = await rules.RecordEvent(event(user, pb.EVENT_TYPE_REFUND, order_id="o-1"))
    assert refunded.reversed_points == 20
    current = await balance(ledger, user)
    assert (current.available, current.pending, current.lifetime_reversed) == (0, 0, 20)
    await audit_clean(ledger)


async def test_tasks_pay_once_per_item_or_once_ever(
    rules: RulesStub, ledger: LedgerStub, user: str
) -> None:
    first = await rules.RecordEvent(event(user, pb.EVENT_TYPE_LESSON_COMPLETED, item_id="lesson-1"))
    again = await rules.RecordEvent(event(user, pb.EVENT_TYPE_LESSON_COMPLETED, item_id="lesson-1"))
    other = await rules.RecordEvent(event(user, pb.EVENT_TYPE_LESSON_COMPLETED, item_id="lesson-2"))
    assert [first.total_points, again.total_points, other.total_points] == [50, 0, 50]
    assert again.awards[0].reason == "ALREADY_COMPLETED"
    bonus = await rules.RecordEvent(event(user, pb.EVENT_TYPE_REGISTER))
    second = await rules.RecordEvent(event(user, pb.EVENT_TYPE_REGISTER))
    assert [bonus.total_points, second.total_points] == [200, 0]
    assert (await balance(ledger, user, days=31)).expiring[0].amount == 200  # rule expiry
    assert (await balance(ledger, user)).available == 300


async def test_replayed_event_credits_once(rules: RulesStub, ledger: LedgerStub, user: str) -> None:
    request = event(user, pb.EVENT_TYPE_SHARE)
    replies = await asyncio.gather(*(rules.RecordEvent(request) for _ in range(10)))
    assert all(r == replies[0] for r in replies)
    history = await ledger.ListTransfers(lpb.ListTransfersRequest(user_id=user))
    assert [t.amount for t in history.transfers] == [2]
    request.event.item_id = "changed"
    error = await fails(rules.RecordEvent(request))
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


async def test_blacklisted_user_earns_nothing_and_may_not_redeem(
    rules: RulesStub, ledger: LedgerStub, user: str
) -> None:
    entry = pb.AddBlacklistEntryRequest(kind=pb.BLACKLIST_KIND_USER, value=user, reason="farm")
    await rules.AddBlacklistEntry(entry)
    reply = await rules.RecordEvent(event(user, pb.EVENT_TYPE_LIKE))
    assert (reply.decision, list(reply.risk_reasons), reply.total_points) == (
        pb.DECISION_DENY,
        ["BLACKLISTED_USER"],
        0,
    )
    risk = await rules.CheckRisk(pb.CheckRiskRequest(user_id=user, action="redeem"))
    assert risk.decision == pb.DECISION_DENY
    removed = await rules.RemoveBlacklistEntry(
        pb.RemoveBlacklistEntryRequest(kind=pb.BLACKLIST_KIND_USER, value=user)
    )
    assert removed.removed
    assert (await rules.CheckRisk(pb.CheckRiskRequest(user_id=user))).decision == (
        pb.DECISION_ALLOW
    )
    assert (await balance(ledger, user)).available == 0


async def test_blacklisted_device_denies_every_account_on_it(rules: RulesStub, user: str) -> None:
    device = f"dev-{user}"
    await rules.AddBlacklistEntry(
        pb.AddBlacklistEntryRequest(kind=pb.BLACKLIST_KIND_DEVICE, value=device)
    )
    reply = await rules.RecordEvent(event(user, pb.EVENT_TYPE_LIKE, device_id=device))
    assert list(reply.risk_reasons) == ["BLACKLISTED_DEVICE"]
    clean = await rules.RecordEvent(event(user, pb.EVENT_TYPE_LIKE, device_id="other"))
    assert clean.decision == pb.DECISION_ALLOW


async def test_a_burst_goes_to_review_then_is_denied(rules: RulesStub, user: str) -> None:
    decisions = [
        (await rules.RecordEvent(event(user, pb.EVENT_TYPE_LIKE))).decision for _ in range(42)
    ]
    # RULES_REVIEW_PER_MINUTE=30, RULES_VELOCITY_PER_MINUTE=40
    assert (
        decisions == [pb.DECISION_ALLOW] * 30 + [pb.DECISION_REVIEW] * 10 + [pb.DECISION_DENY] * 2
    )


async def test_bad_events_are_refused_with_field_violations(rules: RulesStub, user: str) -> None:
    error = await fails(rules.RecordEvent(event(user, pb.EVENT_TYPE_PURCHASE)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in error.violations} == {"event.amount", "event.order_id"}
    error = await fails(rules.RecordEvent(event(user, pb.EVENT_TYPE_LIKE, days_ago=-1)))
    assert [v.field for v in error.violations] == ["event.occurred_at"]
    error = await fails(rules.UpsertRule(pb.UpsertRuleRequest(rule=pb.Rule(rule_id="x"))))
    assert {"rule.kind", "rule.event_type"} <= {v.field for v in error.violations}


async def test_batch_of_events(rules: RulesStub, user: str) -> None:
    events = [event(user, pb.EVENT_TYPE_LIKE).event, event(user, pb.EVENT_TYPE_PURCHASE).event]
    reply = await rules.RecordEvents(pb.RecordEventsRequest(events=events))
    assert [r.WhichOneof("result") for r in reply.results] == ["response", "error"]
    assert reply.results[0].response.total_points == 1
    assert reply.results[1].error.reason == "INVALID_ARGUMENT"


async def test_review_holds_points_until_an_operator_decides(
    rules: RulesStub, ledger: LedgerStub, database_url: str, rules_host: ServiceHost
) -> None:
    settlement = rules_host.job("settlement").passes
    device = f"farm-{uuid.uuid4().hex[:8]}"
    accounts = [f"farm-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    replies = [
        await rules.RecordEvent(event(a, pb.EVENT_TYPE_LIKE, device_id=device)) for a in accounts
    ]
    # RULES_ACCOUNTS_PER_DEVICE defaults to 3: the third account on the device is reviewed.
    assert [r.decision for r in replies] == [pb.DECISION_ALLOW] * 2 + [pb.DECISION_REVIEW] * 2
    assert list(replies[2].risk_reasons) == ["SHARED_DEVICE"]
    assert replies[2].awards[0].in_review and replies[2].total_points == 1
    await settlement.more(2)  # settlement runs: reviewed points must stay out
    assert [(await balance(ledger, a)).available for a in accounts] == [1, 1, 0, 0]
    waiting = {
        (r.user_id, r.event_id)
        for r in (await rules.ListReviews(pb.ListReviewsRequest(page_size=200))).reviews
    }
    assert {(accounts[2], replies[2].event_id), (accounts[3], replies[3].event_id)} <= waiting
    approved = await rules.ApproveReview(
        pb.ApproveReviewRequest(user_id=accounts[2], event_id=replies[2].event_id)
    )
    rejected = await rules.RejectReview(
        pb.RejectReviewRequest(user_id=accounts[3], event_id=replies[3].event_id)
    )
    assert (approved.points, rejected.points) == (1, 1)
    await settlement.more(2)
    assert [(await balance(ledger, a)).available for a in accounts] == [1, 1, 1, 0]
    again = await fails(
        rules.ApproveReview(
            pb.ApproveReviewRequest(user_id=accounts[3], event_id=replies[3].event_id)
        )
    )
    assert again.reason == "REVIEW_NOT_FOUND"  # decided once, for good
    for account, reply, decision in (
        (accounts[2], replies[2], "APPROVED"),
        (accounts[3], replies[3], "REJECTED"),
    ):
        opened, decided = await events_of(database_url, "rules", account)
        assert (opened["type"], opened["data"]["reasons"]) == ("review.opened", ["SHARED_DEVICE"])
        assert opened["data"]["event_id"] == decided["data"]["event_id"] == reply.event_id
        assert (decided["type"], decided["data"]["decision"]) == ("review.decided", decision)
    assert await events_of(database_url, "rules", accounts[0]) == []  # nothing to review


async def test_simulation_previews_a_draft_and_changes_nothing(
    rules: RulesStub, ledger: LedgerStub, user: str
) -> None:
    likes = [event(user, pb.EVENT_TYPE_LIKE).event for _ in range(4)]
    draft = pb.Rule(
        rule_id="like",
        kind=pb.RULE_KIND_ACTION,
        event_type=pb.EVENT_TYPE_LIKE,
        enabled=True,
        action=pb.ActionParams(points=3),
        daily_cap=10,
    )
    preview = await rules.SimulateEvents(
        pb.SimulateEventsRequest(events=likes, draft_rules=[draft])
    )
    assert [r.total_points for r in preview.results] == [3, 3, 3, 1]  # the draft's cap of 10
    assert preview.total_points == 10
    # Today's rules beside the draft, on the same events: the stored rule gives 1 point each.
    assert [(r.id, r.points) for r in preview.draft.by_rule] == [("like", 10)]
    assert [(r.id, r.points) for r in preview.current.by_rule] == [("like", 4)]
    assert preview.draft.cost.amount_minor > preview.current.cost.amount_minor > 0
    current = await rules.SimulateEvents(pb.SimulateEventsRequest(events=likes))
    assert current.total_points == current.draft.total_points == 4
    stored = {r.rule_id: r for r in (await rules.ListRules(pb.ListRulesRequest())).rules}
    assert stored["like"].action.points == 1  # the draft was never saved
    assert (await balance(ledger, user)).available == 0
    real = await rules.RecordEvent(pb.RecordEventRequest(event=likes[0]))
    assert real.total_points == 1  # the simulated event id was not recorded either


async def test_every_decision_is_explainable_to_the_user(rules: RulesStub, user: str) -> None:
    for _ in range(7):
        await rules.RecordEvent(event(user, pb.EVENT_TYPE_LIKE))
    first = await rules.ListUserEvents(pb.ListUserEventsRequest(user_id=user, page_size=4))
    rest = await rules.ListUserEvents(
        pb.ListUserEventsRequest(user_id=user, page_size=4, page_token=first.next_page_token)
    )
    outcomes = [e.outcome for e in [*first.events, *rest.events]]
    assert len(outcomes) == 7 and not rest.next_page_token
    # Newest first: the two capped likes explain themselves.
    assert [(o.awards[0].points, o.awards[0].capped_by) for o in outcomes[:2]] == [
        (0, "rule_daily_cap"),
        (0, "rule_daily_cap"),
    ]
    assert all(o.awards[0].points == 1 for o in outcomes[2:])


async def test_rule_changes_are_versioned_and_awards_name_their_version(
    rules: RulesStub, user: str
) -> None:
    rule = pb.Rule(
        rule_id="comment-v",
        kind=pb.RULE_KIND_ACTION,
        event_type=pb.EVENT_TYPE_COMMENT,
        enabled=True,
        action=pb.ActionParams(points=2),
    )
    first = (await rules.UpsertRule(pb.UpsertRuleRequest(rule=rule))).rule
    rule.action.points = 3
    second = (await rules.UpsertRule(pb.UpsertRuleRequest(rule=rule))).rule
    assert second.version == first.version + 1
    reply = await rules.RecordEvent(event(user, pb.EVENT_TYPE_COMMENT))
    [award] = [a for a in reply.awards if a.rule_id == "comment-v"]
    assert (award.points, award.rule_version) == (3, second.version)
    rule.enabled = False  # retire it for other tests
    await rules.UpsertRule(pb.UpsertRuleRequest(rule=rule))


async def test_issuance_report_prices_points_against_purchases(rules: RulesStub, user: str) -> None:
    start = datetime.now(UTC) - timedelta(milliseconds=1)
    await rules.RecordEvent(
        event(user, pb.EVENT_TYPE_PURCHASE, amount_minor=10000, order_id="report-1")
    )
    await rules.RecordEvent(event(user, pb.EVENT_TYPE_LIKE))
    report = await rules.GetIssuanceReport(
        pb.GetIssuanceReportRequest(time_range=common_pb2.TimeRange(start_time=to_timestamp(start)))
    )
    assert report.points_issued == 21
    assert (report.cost.amount_minor, report.purchases.amount_minor) == (21, 10000)
    assert report.issuance_ratio_ppm == 2100  # 0.21 yuan of points per 100 yuan bought
    assert {(r.id, r.points) for r in report.by_rule} == {("like", 1), ("purchase", 20)}


async def test_caps_left_today_and_the_blacklist_listing(rules: RulesStub, user: str) -> None:
    for _ in range(3):
        await rules.RecordEvent(event(user, pb.EVENT_TYPE_LIKE))
    caps = {
        c.rule_id: c for c in (await rules.GetUserCaps(pb.GetUserCapsRequest(user_id=user))).caps
    }
    assert (caps["like"].earned_today, caps["like"].remaining_today) == (3, 2)
    status = await rules.GetMemberStatus(pb.GetMemberStatusRequest(user_id=user))
    assert {c.rule_id: c for c in status.caps}["like"] == caps["like"]
    await rules.AddBlacklistEntry(
        pb.AddBlacklistEntryRequest(
            kind=pb.BLACKLIST_KIND_IP, value=f"10.0.0.{len(user)}", reason="listing test"
        )
    )
    listed = (await rules.ListBlacklist(pb.ListBlacklistRequest())).entries
    assert any(e.reason == "listing test" and e.kind == pb.BLACKLIST_KIND_IP for e in listed)
    await rules.RemoveBlacklistEntry(
        pb.RemoveBlacklistEntryRequest(kind=pb.BLACKLIST_KIND_IP, value=f"10.0.0.{len(user)}")
    )


async def test_purchase_refund_loops_go_to_review(rules: RulesStub, user: str) -> None:
    for n in range(3):  # RULES_REFUNDS_PER_MONTH defaults to 3
        await rules.RecordEvent(
            event(user, pb.EVENT_TYPE_PURCHASE, amount_minor=5000, order_id=f"loop-{n}")
        )
        await rules.RecordEvent(event(user, pb.EVENT_TYPE_REFUND, order_id=f"loop-{n}"))
    again = await rules.RecordEvent(
        event(user, pb.EVENT_TYPE_PURCHASE, amount_minor=5000, order_id="loop-4")
    )
    assert (again.decision, list(again.risk_reasons)) == (pb.DECISION_REVIEW, ["REFUND_LOOP"])
    assert again.awards[0].in_review


async def test_text_postgresql_cannot_store_is_refused(rules: RulesStub, user: str) -> None:
    request = event(user, pb.EVENT_TYPE_LIKE, device_id="d\x00")
    request.event.event_id = "e\x00"
    error = await fails(rules.RecordEvent(request))
    assert {v.field for v in error.violations} == {"event.event_id", "event.device_id"}
