"""Adaptive allocation by Thompson sampling, without the database.

The arms that compete are the control and the treatments; the holdout keeps its floor share, so
the program's effect stays measurable. Each competing arm's primary metric per member has a
normal posterior (mean, standard error); a draw of every arm's metric divided by its points per
member picks a winner, and each arm's share follows how often it wins. Every competing arm keeps
a small share so that it can still be learnt about. Then the budget: when the members expected
until the end, at each arm's points per member so far, would cost more than what is left, share
moves from the costliest arms to the cheapest until it fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loyalty.rules.v1 import rules_pb2 as pb
from services.rules.experiment_design import BASIS, KEEP_BP

DRAWS = 4000


@dataclass(frozen=True)
class ArmFigures:
    """What the bandit knows of an arm, per member: its primary metric, and its cost (the
    points awarded by what the experiment tests)."""

    arm_id: str
    role: pb.ArmRole.ValueType
    members: int
    mean: float
    variance: float
    points_per_member: float


def win_rates(arms: Sequence[ArmFigures], rng: np.random.Generator) -> list[float]:
    """How often each arm's sampled metric per point is the best."""
    means = np.array([a.mean for a in arms])
    # An arm of fewer than two members is unknown (a wide prior); otherwise its standard error.
    errors = np.array([np.sqrt(a.variance / a.members) if a.members >= 2 else 1.0 for a in arms])
    costs = np.array([max(a.points_per_member, 1.0) for a in arms])
    draws = rng.normal(means, errors, size=(DRAWS, len(arms))) / costs
    wins = np.bincount(np.argmax(draws, axis=1), minlength=len(arms))
    return [float(w) / DRAWS for w in wins]


def shares(
    arms: Sequence[ArmFigures],
    floor_bp: int,
    rng: np.random.Generator,
    points_left: float | None,
    members_to_come: float,
) -> dict[str, int]:
    """New shares in basis points, adding up to BASIS. `points_left` is what the budget still
    allows (None: no budget); `members_to_come` how many members are expected until the end."""
    holdout = [a for a in arms if a.role == pb.ARM_ROLE_HOLDOUT]
    competing = [a for a in arms if a.role != pb.ARM_ROLE_HOLDOUT]
    kept = floor_bp if holdout else 0
    spread = max(0, BASIS - kept - KEEP_BP * len(competing))  # a high floor leaves none
    weights = [KEEP_BP + rate * spread for rate in win_rates(competing, rng)]
    result = dict(zip([a.arm_id for a in competing], _whole(weights, BASIS - kept), strict=True))
    if holdout:
        result[holdout[0].arm_id] = kept
    if points_left is not None:
        _afford(result, arms, points_left, members_to_come)
    return result


def _whole(weights: Sequence[float], total: int) -> list[int]:
    """Whole numbers in proportion to `weights`, adding up to `total` (largest remainders)."""
    exact = [w * total / sum(weights) for w in weights]
    whole = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - whole[i], reverse=True)
    for i in by_remainder[: total - sum(whole)]:
        whole[i] += 1
    return whole


def _afford(
    result: dict[str, int], arms: Sequence[ArmFigures], points_left: float, to_come: float
) -> None:
    """Move share from the costliest competing arms to the cheapest until the members to come
    cost no more than `points_left` (or nothing more can move)."""
    cost = {a.arm_id: a.points_per_member for a in arms}
    competing = [a.arm_id for a in arms if a.role != pb.ARM_ROLE_HOLDOUT]
    cheapest = min(competing, key=lambda i: cost[i])
    over = to_come * sum(result[i] * cost[i] for i in result) / BASIS - max(points_left, 0.0)
    for arm_id in sorted(competing, key=lambda i: cost[i], reverse=True):
        saving = to_come * (cost[arm_id] - cost[cheapest]) / BASIS  # per basis point moved
        if over <= 0 or saving <= 0:
            break
        moved = min(result[arm_id], int(np.ceil(over / saving)))
        result[arm_id] -= moved
        result[cheapest] += moved
        over -= moved * saving
