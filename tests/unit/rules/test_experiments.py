"""Experiments without the database: assignment, overlays, statistics and the bandit."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from loyalty.common.v1 import common_pb2
from loyalty.rules.v1 import rules_pb2 as pb
from services.common.errors import InvalidArgument
from services.rules import bandit, experiment_stats
from services.rules.experiment_design import (
    BASIS,
    KEEP_BP,
    arm_for,
    check_experiment,
    with_defaults,
)
from services.rules.experiment_stats import Outcome, holm, welch
from services.rules.program import Program

UNTIL = datetime(2026, 6, 30, tzinfo=UTC)
LIKE = pb.Rule(
    rule_id="like",
    kind=pb.RULE_KIND_ACTION,
    event_type=pb.EVENT_TYPE_LIKE,
    enabled=True,
    action=pb.ActionParams(points=1),
)


def like_x2() -> pb.Experiment:
    double = pb.Rule()
    double.CopyFrom(LIKE)
    double.action.points = 2
    experiment = pb.Experiment(
        experiment_id="like-x2",
        arms=[
            pb.Arm(arm_id="a", role=pb.ARM_ROLE_CONTROL, share_bp=4500),
            pb.Arm(arm_id="b", role=pb.ARM_ROLE_TREATMENT, share_bp=4500, rules=[double]),
            pb.Arm(arm_id="h", role=pb.ARM_ROLE_HOLDOUT, share_bp=1000),
        ],
        status=pb.EXPERIMENT_STATUS_RUNNING,
        confidence_percent=95,
        min_days=7,
        min_members=100,
    )
    experiment.start_time.FromDatetime(UTC_START)
    experiment.end_time.FromDatetime(UNTIL + timedelta(days=30))
    return experiment


UTC_START = UNTIL - timedelta(days=20)


def test_the_arm_is_the_documented_hash_and_follows_the_shares() -> None:
    experiment = like_x2()
    arms = Counter(arm_for(experiment, f"m{i}") for i in range(20_000))
    assert abs(arms["a"] / 20_000 - 0.45) < 0.015 and abs(arms["h"] / 20_000 - 0.10) < 0.01
    for user in ("m1", "m2", "会员-3"):
        place = int(hashlib.sha256(f"like-x2:{user}".encode()).hexdigest(), 16) % 10_000
        expected = "a" if place < 4500 else "b" if place < 9000 else "h"
        assert arm_for(experiment, user) == expected


def test_an_experiment_is_refused_field_by_field() -> None:
    experiment = like_x2()
    experiment.arms[0].share_bp = 4000  # shares add up to 9500
    experiment.arms[1].rules[0].action.points = 0
    experiment.arms.add(arm_id="c", role=pb.ARM_ROLE_CONTROL, share_bp=0)
    with pytest.raises(InvalidArgument) as refused:
        check_experiment(experiment)
    fields = {v.field: v.description for v in refused.value.violations}
    assert fields["experiment.arms"] in (
        "shares must add up to 10000",
        "need exactly one CONTROL arm",
    )
    assert any(f.startswith("experiment.arms[1].rules[0].") for f in fields), fields


def test_each_arm_sees_its_own_program() -> None:
    program = Program(generation=1, rules={pb.EVENT_TYPE_LIKE: [LIKE]}, experiments=[like_x2()])
    treated = program.for_member({"like-x2": "b"})
    assert treated.rules_for(pb.EVENT_TYPE_LIKE)[0].action.points == 2
    assert program.for_member({"like-x2": "a"}).rules_for(pb.EVENT_TYPE_LIKE)[0].action.points == 1
    assert program.for_member({"like-x2": "h"}).rules_for(pb.EVENT_TYPE_LIKE) == []
    assert program.for_member({}) is program
    assert treated.decider(pb.Award(rule_id="like")) == ("like-x2", "b")
    assert treated.decider(pb.Award(rule_id="share")) is None
    assert program.for_member({"like-x2": "b"}) is treated  # built once


def members(rng: np.random.Generator, arm: str, n: int, likes: float) -> list[Outcome]:
    """Members assigned over the first 10 days, active on some days, liking Poisson(likes)."""
    out = []
    for i in range(n):
        assigned = UTC_START + timedelta(days=float(rng.uniform(0, 10)))
        last = assigned + timedelta(days=float(rng.uniform(0, 15)))
        events = int(rng.poisson(likes))
        out.append(
            Outcome(
                f"{arm}{i}",
                arm,
                assigned,
                events,
                int(rng.integers(1, 8)),
                min(last, UNTIL),
                events * (2 if arm == "b" else 1),
                bool(rng.random() < 0.2),
            )
        )
    return out


def cost(points: int) -> common_pb2.Money:
    return common_pb2.Money(amount_minor=points, currency="CNY")


def metric(result: pb.ArmResult, which: int) -> pb.MetricResult:
    return next(m for m in result.metrics if m.metric == which)


def test_a_known_uplift_is_found_within_its_interval() -> None:
    rng = np.random.default_rng(7)
    outcomes = (
        members(rng, "a", 400, 4.0) + members(rng, "b", 400, 6.0) + members(rng, "h", 100, 4.0)
    )
    found = experiment_stats.results(like_x2(), outcomes, UNTIL, cost)
    treated = metric(found.arms[1], pb.METRIC_EVENTS)
    assert treated.low < 2.0 < treated.high and treated.low > 0 and treated.significant
    assert treated.members == 400 and found.enough_data and found.days == 20
    assert found.arms[1].points == sum(o.points for o in outcomes if o.arm_id == "b")
    control = metric(found.arms[0], pb.METRIC_EVENTS)
    assert not control.significant and control.difference == 0


def test_an_a_a_experiment_finds_no_difference_in_95_percent_of_seeded_runs() -> None:
    clean = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        outcomes = members(rng, "a", 150, 4.0) + members(rng, "b", 150, 4.0)
        for o in outcomes:  # the same program: points follow likes alike
            object.__setattr__(o, "points", o.events)
        experiment = like_x2()
        del experiment.arms[2]
        experiment.arms[0].share_bp = experiment.arms[1].share_bp = 5000
        found = experiment_stats.results(experiment, outcomes, UNTIL, cost)
        clean += not any(m.significant for arm in found.arms for m in arm.metrics)
    assert clean >= 190, clean


def test_welch_and_holm_on_known_figures() -> None:
    compared = welch([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], 0.95)
    assert compared.difference == 0 and compared.low < 0 < compared.high
    assert compared.p_value == pytest.approx(1.0)
    certain = welch([1.0, 1.0], [0.0, 0.0], 0.95)
    assert (certain.low, certain.high, certain.p_value) == (1.0, 1.0, 0.0)
    assert holm([0.01, 0.04, 0.03], 0.05) == [True, False, False]
    assert holm([0.001, 0.02, 0.03], 0.05) == [True, True, True]


def figures(b_mean: float, b_points: float) -> list[bandit.ArmFigures]:
    return [
        bandit.ArmFigures("a", pb.ARM_ROLE_CONTROL, 200, 4.0, 4.0, 4.0),
        bandit.ArmFigures("b", pb.ARM_ROLE_TREATMENT, 200, b_mean, 4.0, b_points),
        bandit.ArmFigures("h", pb.ARM_ROLE_HOLDOUT, 50, 3.0, 3.0, 0.0),
    ]


def test_the_bandit_moves_members_to_the_better_arm_and_keeps_the_holdout() -> None:
    rng = np.random.default_rng(1)
    shares = bandit.shares(figures(8.0, 4.0), 1000, rng, None, 1000)
    assert sum(shares.values()) == BASIS and shares["h"] == 1000
    assert shares["b"] > 8000 and shares["a"] >= KEEP_BP
    worse = bandit.shares(figures(8.0, 16.0), 1000, rng, None, 1000)  # better, but 4x the cost
    assert worse["a"] > worse["b"]


def test_the_bandit_never_allocates_beyond_the_budget() -> None:
    rng = np.random.default_rng(2)
    arms = figures(8.0, 6.0)
    left, to_come = 5000.0, 1000
    shares = bandit.shares(arms, 1000, rng, left, to_come)
    cost_per = {a.arm_id: a.points_per_member for a in arms}
    projected = to_come * sum(shares[i] * cost_per[i] for i in shares) / BASIS
    assert projected <= left and shares["h"] == 1000 and sum(shares.values()) == BASIS
    unbounded = bandit.shares(arms, 1000, np.random.default_rng(2), None, to_come)
    assert shares["b"] < unbounded["b"]


def test_an_adaptive_holdout_keeps_its_share_unless_told_and_leaves_room() -> None:
    experiment = like_x2()
    experiment.adaptive = True
    assert with_defaults(experiment).holdout_floor_bp == 1000
    experiment.holdout_floor_bp = 9700  # the control and the treatment need 2 % each
    with pytest.raises(InvalidArgument) as refused:
        check_experiment(experiment)
    assert [v.field for v in refused.value.violations] == ["experiment.holdout_floor_bp"]
