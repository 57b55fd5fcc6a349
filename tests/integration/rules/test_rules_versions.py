"""Every version of a rule, campaign, tier or budget can be read back, with who and when."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc

from loyalty.rules.v1 import rules_pb2 as pb
from tests.support.ledger_calls import fails
from tests.support.rules_calls import RulesStub


async def test_a_rules_versions_newest_first_with_their_author(rules: RulesStub) -> None:
    rule_id = f"versioned-{uuid.uuid4().hex[:8]}"
    before = datetime.now(UTC) - timedelta(seconds=5)
    for points, actor in ((1, "alice"), (2, "bob"), (3, "")):
        await rules.UpsertRule(
            pb.UpsertRuleRequest(
                rule=pb.Rule(
                    rule_id=rule_id,
                    kind=pb.RULE_KIND_ACTION,
                    event_type=pb.EVENT_TYPE_SHARE,
                    enabled=False,  # rules are program-wide: this one must award nothing
                    action=pb.ActionParams(points=points),
                ),
                actor=actor,
            )
        )
    ask = pb.ListVersionsRequest(kind=pb.CONFIG_KIND_RULE, id=rule_id, page_size=2)
    first = await rules.ListVersions(ask)
    assert [(v.version, v.actor, v.rule.action.points) for v in first.versions] == [
        (3, "", 3),
        (2, "bob", 2),
    ]
    assert all(v.create_time.ToDatetime(tzinfo=UTC) > before for v in first.versions)
    ask.page_token = first.next_page_token
    rest = await rules.ListVersions(ask)
    assert [(v.version, v.actor, v.rule.version) for v in rest.versions] == [(1, "alice", 1)]
    assert not rest.next_page_token


async def test_a_tiers_versions_and_an_unknown_id(rules: RulesStub) -> None:
    unknown = await rules.ListVersions(
        pb.ListVersionsRequest(kind=pb.CONFIG_KIND_TIER, id=f"none-{uuid.uuid4().hex[:6]}")
    )
    assert list(unknown.versions) == []
    error = await fails(rules.ListVersions(pb.ListVersionsRequest(id="x")))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["kind"]
    budget_id = f"b-{uuid.uuid4().hex[:8]}"
    for limit in (1000, 2000):
        await rules.UpsertBudget(
            pb.UpsertBudgetRequest(
                budget=pb.Budget(
                    budget_id=budget_id, period=pb.BUDGET_PERIOD_TOTAL, points_limit=limit
                ),
                actor="carol",
            )
        )
    listed = await rules.ListVersions(
        pb.ListVersionsRequest(kind=pb.CONFIG_KIND_BUDGET, id=budget_id)
    )
    assert [(v.actor, v.budget.points_limit) for v in listed.versions] == [
        ("carol", 2000),
        ("carol", 1000),
    ]
    await rules.DeleteBudget(pb.DeleteBudgetRequest(budget_id=budget_id))


async def test_saving_what_is_already_saved_makes_no_new_version(rules: RulesStub) -> None:
    rule = pb.Rule(
        rule_id=f"same-{uuid.uuid4().hex[:8]}",
        kind=pb.RULE_KIND_ACTION,
        event_type=pb.EVENT_TYPE_SHARE,
        enabled=False,
        action=pb.ActionParams(points=1),
    )
    saved = [(await rules.UpsertRule(pb.UpsertRuleRequest(rule=rule))).rule for _ in range(3)]
    assert [r.version for r in saved] == [1, 1, 1]  # a demo run twice leaves every rule at v1
    rule.action.points = 2
    assert (await rules.UpsertRule(pb.UpsertRuleRequest(rule=rule))).rule.version == 2
    budget = pb.Budget(
        budget_id=f"b-{uuid.uuid4().hex[:8]}", period=pb.BUDGET_PERIOD_TOTAL, points_limit=5
    )
    again = [
        (await rules.UpsertBudget(pb.UpsertBudgetRequest(budget=budget))).budget for _ in range(2)
    ]
    assert [b.version for b in again] == [1, 1]
    listed = await rules.ListVersions(
        pb.ListVersionsRequest(kind=pb.CONFIG_KIND_BUDGET, id=budget.budget_id)
    )
    assert [v.version for v in listed.versions] == [1]
    await rules.DeleteBudget(pb.DeleteBudgetRequest(budget_id=budget.budget_id))
