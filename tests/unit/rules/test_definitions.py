from datetime import date

import pytest

from loyalty.common.v1 import common_pb2
from loyalty.rules.v1 import rules_pb2 as pb
from services.common.errors import InvalidArgument
from services.rules.definitions import (
    apply_caps,
    budget_points,
    campaign_extra,
    check_in_points,
    check_rule,
    extra_shares,
    online_points,
    period_key,
    purchase_points,
    streak_day,
)

WEEK = pb.CheckInParams(streak_points=[5, 5, 10, 10, 15, 15, 30])


def test_streak_continues_resets_and_stops_twice_a_day() -> None:
    today = date(2026, 11, 25)
    assert streak_day(None, 0, today) == 1
    assert streak_day(date(2026, 11, 24), 3, today) == 4
    assert streak_day(date(2026, 11, 23), 3, today) == 1  # missed a day
    assert streak_day(today, 3, today) == 0  # already checked in


def test_check_in_table_cycles_or_keeps_the_last_entry() -> None:
    assert [check_in_points(WEEK, d) for d in range(1, 8)] == [5, 5, 10, 10, 15, 15, 30]
    assert check_in_points(WEEK, 9) == 30
    cycling = pb.CheckInParams(streak_points=WEEK.streak_points, cycle=True)
    assert [check_in_points(cycling, d) for d in (8, 9, 14)] == [5, 5, 30]


def test_purchase_points_round_down() -> None:
    every_50_yuan = pb.PurchaseParams(points=10, per_amount_minor=5000, currency="CNY")
    assert purchase_points(every_50_yuan, 12345) == 20
    assert purchase_points(every_50_yuan, 4999) == 0
    per_yuan = pb.PurchaseParams(points=1, per_amount_minor=100, currency="CNY")
    assert purchase_points(per_yuan, 12345) == 123


def test_caps_cut_to_the_tightest_limit() -> None:
    assert apply_caps(10, []) == (10, "")
    assert apply_caps(10, [("rule_daily_cap", 4), ("group:activity", 7)]) == (4, "rule_daily_cap")
    assert apply_caps(10, [("rule_daily_cap", 8), ("group:activity", 2)]) == (2, "group:activity")
    assert apply_caps(3, [("rule_daily_cap", 0)]) == (0, "rule_daily_cap")


def test_rule_validation_reports_each_problem() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_rule(
            pb.Rule(
                rule_id="Bad Id",
                kind=pb.RULE_KIND_PURCHASE,
                daily_cap=-1,
                task=pb.TaskParams(points=1),
            )
        )
    fields = {v.field for v in caught.value.violations}
    assert fields == {"rule.rule_id", "rule.purchase", "rule.event_type", "rule.daily_cap"}
    check_rule(
        pb.Rule(
            rule_id="like",
            kind=pb.RULE_KIND_ACTION,
            event_type=pb.EVENT_TYPE_LIKE,
            action=pb.ActionParams(points=1),
            daily_cap=5,
        )
    )


def test_campaigns_stack_up_to_the_maximum_multiplier() -> None:
    double = pb.Campaign(campaign_id="double", multiplier_percent=200)
    half_more = pb.Campaign(campaign_id="half", multiplier_percent=150)
    bonus = pb.Campaign(campaign_id="bonus", bonus_points=7)
    assert campaign_extra([double], 10, 300) == 10
    assert campaign_extra([double, half_more], 10, 300) == 15  # 250%
    assert campaign_extra([double, double, double], 10, 300) == 20  # capped at 300%
    assert campaign_extra([double, bonus], 10, 300) == 17
    assert campaign_extra([], 10, 300) == 0


def test_online_time_and_budget_periods() -> None:
    assert online_points(pb.OnlineTimeParams(points=2, per_minutes=30), 95) == 6
    day = date(2026, 11, 25)
    assert period_key(pb.BUDGET_PERIOD_DAY, day) == "day:2026-11-25"
    assert period_key(pb.BUDGET_PERIOD_MONTH, day) == "month:2026-11"
    assert period_key(pb.BUDGET_PERIOD_TOTAL, day) == "total"


def test_budget_limit_is_the_tighter_of_points_and_money() -> None:
    yuan = common_pb2.Money(amount_minor=500, currency="CNY")  # 5 yuan = 500 points at 100/yuan
    assert budget_points(pb.Budget(points_limit=800, money_limit=yuan), 100) == 500
    assert budget_points(pb.Budget(points_limit=300, money_limit=yuan), 100) == 300
    assert budget_points(pb.Budget(money_limit=yuan), 100) == 500
    assert budget_points(pb.Budget(points_limit=42), 100) == 42


def test_extra_shares_add_up_and_follow_what_each_source_adds() -> None:
    double = pb.Campaign(campaign_id="double", multiplier_percent=200)
    bonus = pb.Campaign(campaign_id="bonus", bonus_points=20)
    # Base 100 at silver (150 %) with both: tier 50, double 100, bonus 20.
    assert extra_shares([double, bonus], 100, 150, 170) == (50, [100, 20])
    # Cut to 17 by a cap: the same proportions, remainders to the largest fractions.
    tier, shares = extra_shares([double, bonus], 100, 150, 17)
    assert tier + sum(shares) == 17 and (tier, shares) == (5, [10, 2])
    assert extra_shares([double], 100, 100, 0) == (0, [0])
    assert extra_shares([], 100, 100, 0) == (0, [])
    for extra in range(0, 200):
        tier, shares = extra_shares([double, bonus, double], 37, 125, extra)
        assert tier + sum(shares) == extra and min([tier, *shares]) >= 0


def test_each_kind_has_its_base_points() -> None:
    from services.rules.definitions import Base, base_points

    purchase = pb.Rule(purchase=pb.PurchaseParams(points=1, per_amount_minor=100, currency="CNY"))
    bought = pb.Event(amount=common_pb2.Money(amount_minor=1050, currency="CNY"))
    assert base_points(purchase, bought, 0) == Base(10)
    in_dollars = pb.Event(amount=common_pb2.Money(amount_minor=1050, currency="USD"))
    assert base_points(purchase, in_dollars, 0) == Base(0, "CURRENCY_NOT_COVERED")
    too_little = pb.Event(amount=common_pb2.Money(amount_minor=99, currency="CNY"))
    assert base_points(purchase, too_little, 0) == Base(0, "NOTHING_EARNED")
    check_in = pb.Rule(check_in=pb.CheckInParams(streak_points=[5, 10]))
    assert base_points(check_in, pb.Event(), 2) == Base(10)
    online = pb.Rule(online_time=pb.OnlineTimeParams(points=3, per_minutes=10))
    assert base_points(online, pb.Event(minutes=25), 0) == Base(6)
    for kind in ("action", "task", "invite"):
        rule = pb.Rule(**{kind: {"points": 7}})  # type: ignore[arg-type]
        assert base_points(rule, pb.Event(), 0) == Base(7)
    assert base_points(pb.Rule(), pb.Event(), 0) == Base(0, "NOTHING_EARNED")


def test_pending_purchases_mature_and_expiry_counts_from_credit_never_before_now() -> None:
    from datetime import UTC, datetime, timedelta

    from services.rules.definitions import expiry, maturity

    at = datetime(2026, 3, 1, tzinfo=UTC)
    pending = pb.Rule(
        purchase=pb.PurchaseParams(points=1, per_amount_minor=1, currency="CNY", pending_days=7),
        expiry_days=30,
    )
    assert maturity(pending, at) == at + timedelta(days=7)
    assert maturity(pb.Rule(action=pb.ActionParams(points=1)), at) is None
    matures = at + timedelta(days=7)
    assert expiry(pending, at, matures, at) == matures + timedelta(days=30)
    late = at + timedelta(days=20)  # reported after it would have matured: counted from now
    assert expiry(pending, at, matures, late) == late + timedelta(days=30)
    assert expiry(pb.Rule(), at, None, at) is None
