"""An experiment's results from what its members did, without the database.

Every metric is a value per member, so an arm's figure is a mean and two arms compare by
Welch's t (unequal variances; scipy.stats.ttest_ind). Each treatment and holdout is compared
with the control on every metric, and the family of comparisons is corrected by Holm's method,
so that an A/A experiment reports any difference at all in at most (100 - confidence) % of runs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias

import numpy as np
from scipy import stats

from loyalty.common.v1 import common_pb2
from loyalty.rules.v1 import rules_pb2 as pb

DAY = timedelta(days=1)
Metric: TypeAlias = pb.Metric.ValueType
METRICS = [m for m in pb.Metric.values() if m != pb.METRIC_UNSPECIFIED]
RETENTION = {pb.METRIC_RETENTION_7D: 7, pb.METRIC_RETENTION_30D: 30}
Values = dict[tuple[str, Metric], list[float]]  # (arm_id, metric) -> the members' values


@dataclass(frozen=True)
class Outcome:
    """What one assigned member did from assignment until the results' moment."""

    user_id: str
    arm_id: str
    assigned_at: datetime
    events: int
    active_days: int
    last_at: datetime | None
    points: int  # every award's
    spent: bool
    tested_points: int = 0  # of `points`, awarded by the rules and campaigns under test


def value(outcome: Outcome, metric: Metric, until: datetime) -> float | None:
    """The member's value of `metric` (None: not counted, e.g. retention not yet due)."""
    if metric == pb.METRIC_ACTIVE_DAYS:
        days = max(1, math.ceil((until - outcome.assigned_at) / DAY))
        return outcome.active_days / days
    if metric == pb.METRIC_EVENTS:
        return float(outcome.events)
    if metric in RETENTION:
        after = timedelta(days=RETENTION[metric])
        if until - outcome.assigned_at < after:
            return None
        last = outcome.last_at
        return 1.0 if last is not None and last - outcome.assigned_at >= after else 0.0
    if metric == pb.METRIC_REDEMPTION:
        return 1.0 if outcome.spent else 0.0
    return float(outcome.points)


def values_of(members: Sequence[Outcome], metric: Metric, until: datetime) -> list[float]:
    """The members' values of `metric`, leaving out those not counted."""
    return [v for o in members if (v := value(o, metric, until)) is not None]


@dataclass(frozen=True)
class Comparison:
    difference: float
    low: float
    high: float
    p_value: float


def welch(arm: Sequence[float], control: Sequence[float], confidence: float) -> Comparison:
    """The difference of means (arm - control) with its Welch interval and p-value. Without
    two members on each side, or with no variance on either, there is no interval to speak
    of: it is the difference itself, with p = 1 when the means are equal and 0 otherwise."""
    difference = float(np.mean(arm) - np.mean(control)) if len(arm) and len(control) else 0.0
    if len(arm) < 2 or len(control) < 2 or (np.var(arm) == 0 and np.var(control) == 0):
        certain = 0.0 if difference and len(arm) >= 2 and len(control) >= 2 else 1.0
        return Comparison(difference, difference, difference, certain)
    with warnings.catch_warnings():
        # One side may hold identical values (a rate of 0 or 1): Welch's t is still defined,
        # but scipy warns of precision loss in that side's variance.
        warnings.simplefilter("ignore", RuntimeWarning)
        test = stats.ttest_ind(arm, control, equal_var=False)
    interval = test.confidence_interval(confidence_level=confidence)
    found = Comparison(difference, float(interval.low), float(interval.high), float(test.pvalue))
    if not all(math.isfinite(v) for v in (found.low, found.high, found.p_value)):
        return Comparison(difference, difference, difference, 1.0)  # JSON has no NaN
    return found


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Which hypotheses Holm's step-down method rejects at family-wise level `alpha`."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - rank):
            break
        rejected[index] = True
    return rejected


def results(
    experiment: pb.Experiment,
    outcomes: Sequence[Outcome],
    until: datetime,
    cost: Callable[[int], common_pb2.Money],
) -> pb.ExperimentResults:
    """Every arm's metrics, each non-control arm's differences from the control with their
    intervals, and its cost per incremental active member against the holdout."""
    by_arm = {a.arm_id: [o for o in outcomes if o.arm_id == a.arm_id] for a in experiment.arms}
    values = {
        (arm_id, m): values_of(members, m, until)
        for arm_id, members in by_arm.items()
        for m in METRICS
    }
    control = next(a.arm_id for a in experiment.arms if a.role == pb.ARM_ROLE_CONTROL)
    confidence = experiment.confidence_percent / 100
    arms = [
        _arm(arm.arm_id, by_arm[arm.arm_id], values, control, confidence) for arm in experiment.arms
    ]
    _correct([a for a in arms if a.arm_id != control], 1 - confidence)
    for arm, result in zip(experiment.arms, arms, strict=True):
        result.points_cost.CopyFrom(cost(result.points))
        _incremental_cost(experiment, arm, result, values, cost)
    started = experiment.start_time.ToDatetime().replace(tzinfo=until.tzinfo)
    days = max(0, (until - started).days)
    enough = days >= experiment.min_days and all(r.members >= experiment.min_members for r in arms)
    out = pb.ExperimentResults(
        arms=arms,
        days=days,
        enough_data=enough,
        budget_used_points=sum(o.tested_points for o in outcomes),
    )
    out.as_of_time.FromDatetime(until)
    return out


def _arm(
    arm_id: str,
    members: Sequence[Outcome],
    values: Values,
    control: str,
    confidence: float,
) -> pb.ArmResult:
    result = pb.ArmResult(
        arm_id=arm_id, members=len(members), points=sum(o.points for o in members)
    )
    for metric in METRICS:
        mine = values[(arm_id, metric)]
        line = pb.MetricResult(metric=metric, members=len(mine), mean=_mean(mine), p_value=1.0)
        if arm_id != control:
            base = values[(control, metric)]
            compared = welch(mine, base, confidence)
            line.difference, line.low, line.high = compared.difference, compared.low, compared.high
            line.p_value = compared.p_value
            line.relative = compared.difference / _mean(base) if _mean(base) else 0.0
        result.metrics.append(line)
    return result


def _correct(arms: Sequence[pb.ArmResult], alpha: float) -> None:
    """Mark the comparisons (of the non-control `arms`) Holm's method rejects as significant."""
    lines = [m for a in arms for m in a.metrics]
    for line, rejected in zip(lines, holm([m.p_value for m in lines], alpha), strict=True):
        line.significant = rejected


def _incremental_cost(
    experiment: pb.Experiment,
    arm: pb.Arm,
    result: pb.ArmResult,
    values: Values,
    cost: Callable[[int], common_pb2.Money],
) -> None:
    """(points per member - holdout's) / (active days per member - holdout's), as money."""
    holdout = next((a.arm_id for a in experiment.arms if a.role == pb.ARM_ROLE_HOLDOUT), None)
    if holdout is None or arm.arm_id == holdout:
        return
    active = _mean(values[(arm.arm_id, pb.METRIC_ACTIVE_DAYS)])
    active -= _mean(values[(holdout, pb.METRIC_ACTIVE_DAYS)])
    points = _mean(values[(arm.arm_id, pb.METRIC_POINTS)])
    points -= _mean(values[(holdout, pb.METRIC_POINTS)])
    if active > 0:
        result.cost_per_incremental_active.CopyFrom(cost(round(max(points, 0) / active)))


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0
