"""What an event's transaction asks for up front, told from the program alone."""

from __future__ import annotations

from datetime import date

from loyalty.rules.v1 import rules_pb2 as pb
from services.rules.event_state import asked_for, cap_keys
from services.rules.program import Program

DAY = date(2026, 12, 31)  # ISO week 53 of 2026


def test_cap_keys_name_every_period_and_the_group() -> None:
    rule = pb.Rule(rule_id="like", daily_cap=5, lifetime_cap=50, cap_group="social")
    program = Program(generation=1, cap_groups={"social": 8})
    assert cap_keys(program, rule, DAY) == [
        (("rule:like", "day:2026-12-31"), 5, "rule_daily_cap"),
        (("rule:like", "week:2026-W53"), 0, "rule_weekly_cap"),
        (("rule:like", "month:2026-12"), 0, "rule_monthly_cap"),
        (("rule:like", "life"), 50, "rule_lifetime_cap"),
        (("group:social", "day:2026-12-31"), 8, "group:social"),
    ]
    ungrouped = pb.Rule(rule_id="like", cap_group="gone")  # a group no longer configured
    assert len(cap_keys(program, ungrouped, DAY)) == 4


def test_asked_for_covers_the_event_types_rules_budgets_and_streaks() -> None:
    check_in = pb.Rule(rule_id="daily", event_type=pb.EVENT_TYPE_CHECK_IN)
    check_in.check_in.streak_points.append(5)
    like = pb.Rule(rule_id="like", event_type=pb.EVENT_TYPE_LIKE)
    budget = pb.Budget(budget_id="year", period=pb.BUDGET_PERIOD_TOTAL)
    program = Program(
        generation=1,
        rules={pb.EVENT_TYPE_CHECK_IN: [check_in], pb.EVENT_TYPE_LIKE: [like]},
        budgets=[budget],
    )
    asked = asked_for(program, pb.Event(type=pb.EVENT_TYPE_CHECK_IN), DAY)
    assert asked.streak_rules == ["daily"]
    assert {scope for scope, _ in asked.counters} == {"rule:daily"}
    assert [b for b, _ in asked.budgets] == ["year"]
    nothing = asked_for(program, pb.Event(type=pb.EVENT_TYPE_SHARE), DAY)
    assert (list(nothing.counters), list(nothing.streak_rules)) == ([], [])
