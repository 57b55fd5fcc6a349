"""What an experiment is, without the database: its checks, which arm a member falls in, and
which rules and campaigns it tests.

A member's arm is a pure function of the experiment's id, the member's id and the shares at
the member's first event, so every replica computes the same one; it is then stored, so a later
change of shares (the bandit's) never moves a member already assigned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.errors import FieldViolation, InvalidArgument
from services.common.validation import Checker
from services.rules import definitions

BASIS = 10_000  # shares are in basis points
MAX_ARMS = 10
DEFAULT_CONFIDENCE = 95
DEFAULT_MIN_DAYS = 7
DEFAULT_MIN_MEMBERS = 100
KEEP_BP = 200  # an adaptive experiment's least share for each arm that competes


def bucket(experiment_id: str, user_id: str) -> int:
    """The member's place in 0..9999: sha256 of "<experiment_id>:<user_id>", mod 10000."""
    digest = hashlib.sha256(f"{experiment_id}:{user_id}".encode()).hexdigest()
    return int(digest, 16) % BASIS


def arm_for(experiment: pb.Experiment, user_id: str) -> str:
    """The first arm whose cumulative share exceeds the member's bucket."""
    place, total = bucket(experiment.experiment_id, user_id), 0
    for arm in experiment.arms:
        total += arm.share_bp
        if place < total:
            return arm.arm_id
    return experiment.arms[-1].arm_id  # shares add up to BASIS: never reached


def window(experiment: pb.Experiment) -> tuple[datetime, datetime]:
    return (
        experiment.start_time.ToDatetime(tzinfo=UTC),
        experiment.end_time.ToDatetime(tzinfo=UTC),
    )


def runs_at(experiment: pb.Experiment, moment: datetime) -> bool:
    start, end = window(experiment)
    return experiment.status == pb.EXPERIMENT_STATUS_RUNNING and start <= moment < end


def tested(experiment: pb.Experiment) -> tuple[set[str], set[str]]:
    """The rule ids and campaign ids any arm replaces: what the experiment tests."""
    rules = {r.rule_id for arm in experiment.arms for r in arm.rules}
    campaigns = {c.campaign_id for arm in experiment.arms for c in arm.campaigns}
    return rules, campaigns


def role_of(experiment: pb.Experiment, role: pb.ArmRole.ValueType) -> pb.Arm | None:
    return next((a for a in experiment.arms if a.role == role), None)


def with_defaults(experiment: pb.Experiment) -> pb.Experiment:
    stored = pb.Experiment()
    stored.CopyFrom(experiment)
    stored.confidence_percent = stored.confidence_percent or DEFAULT_CONFIDENCE
    stored.min_days = stored.min_days or DEFAULT_MIN_DAYS
    stored.min_members = stored.min_members or DEFAULT_MIN_MEMBERS
    stored.primary_metric = stored.primary_metric or pb.METRIC_EVENTS
    stored.audience = stored.audience or pb.AUDIENCE_ALL
    holdout = role_of(stored, pb.ARM_ROLE_HOLDOUT)
    if stored.adaptive and holdout is not None and not stored.holdout_floor_bp:
        stored.holdout_floor_bp = holdout.share_bp  # the bandit keeps what was asked for
    return stored


def check_experiment(experiment: pb.Experiment) -> None:
    """Every problem of an experiment's definition, as field violations."""
    c = Checker("experiment")
    c.require(
        definitions.valid_name(experiment.experiment_id), "experiment_id", definitions.NAME_RULE
    )
    c.text("name", experiment.name, definitions.MAX_NAME, required=False)
    c.text("description", experiment.description, definitions.MAX_DESCRIPTION, required=False)
    c.require(
        experiment.HasField("end_time")
        and (
            not experiment.HasField("start_time")
            or experiment.end_time.ToDatetime() > experiment.start_time.ToDatetime()
        ),
        "end_time",
        "is required, after start_time",
    )
    c.require(
        experiment.audience in (pb.AUDIENCE_UNSPECIFIED, pb.AUDIENCE_ALL, pb.AUDIENCE_NEW_USERS),
        "audience",
        "must be ALL or NEW_USERS",
    )
    c.require(
        all(t != pb.EVENT_TYPE_UNSPECIFIED for t in experiment.event_types),
        "event_types",
        "must be known event types",
    )
    c.require(
        experiment.confidence_percent == 0 or 80 <= experiment.confidence_percent <= 99,
        "confidence_percent",
        "must be 80 to 99",
    )
    c.require(0 <= experiment.min_days <= 365, "min_days", "must be 0 to 365")
    c.require(0 <= experiment.min_members <= 10**6, "min_members", "must be 0 to 1000000")
    competing = sum(a.role != pb.ARM_ROLE_HOLDOUT for a in experiment.arms)
    c.require(
        0 <= experiment.holdout_floor_bp <= BASIS - KEEP_BP * competing,
        "holdout_floor_bp",
        f"must leave every other arm {KEEP_BP} (0 to {BASIS - KEEP_BP * competing})",
    )
    c.points("budget_points", experiment.budget_points, zero_allowed=True)
    _check_arms(c, experiment)
    c.done()


def _check_arms(c: Checker, experiment: pb.Experiment) -> None:
    arms = experiment.arms
    if not c.require(2 <= len(arms) <= MAX_ARMS, "arms", f"must hold 2 to {MAX_ARMS} arms"):
        return
    ids = [a.arm_id for a in arms]
    c.require(len(set(ids)) == len(ids), "arms", "arm ids must differ")
    roles = [a.role for a in arms]
    c.require(roles.count(pb.ARM_ROLE_CONTROL) == 1, "arms", "need exactly one CONTROL arm")
    c.require(roles.count(pb.ARM_ROLE_HOLDOUT) <= 1, "arms", "may hold one HOLDOUT arm")
    c.require(sum(a.share_bp for a in arms) == BASIS, "arms", "shares must add up to 10000")
    for index, arm in enumerate(arms):
        at = f"arms[{index}]"
        c.require(definitions.valid_name(arm.arm_id), f"{at}.arm_id", definitions.NAME_RULE)
        c.text(f"{at}.name", arm.name, definitions.MAX_NAME, required=False)
        c.require(0 <= arm.share_bp <= BASIS, f"{at}.share_bp", "must be 0 to 10000")
        c.require(arm.role != pb.ARM_ROLE_UNSPECIFIED, f"{at}.role", "must be set")
        drafts = bool(arm.rules or arm.campaigns)
        c.require(
            drafts == (arm.role == pb.ARM_ROLE_TREATMENT),
            f"{at}.rules",
            "a TREATMENT names draft rules or campaigns; other arms none",
        )
        _check_drafts(c, at, arm)
    c.require(any(a.role == pb.ARM_ROLE_TREATMENT for a in arms), "arms", "need a TREATMENT arm")


def _check_drafts(c: Checker, at: str, arm: pb.Arm) -> None:
    """The arm's drafts checked as UpsertRule and UpsertCampaign would, named by their place."""
    for index, rule in enumerate(arm.rules):
        _absorb(c, f"{at}.rules[{index}].", "rule.", partial(definitions.check_rule, rule))
    for index, draft in enumerate(arm.campaigns):
        check = partial(definitions.check_campaign, draft)
        _absorb(c, f"{at}.campaigns[{index}].", "campaign.", check)
    rule_ids = [r.rule_id for r in arm.rules]
    c.require(len(set(rule_ids)) == len(rule_ids), f"{at}.rules", "rule ids must differ")
    campaign_ids = [d.campaign_id for d in arm.campaigns]
    c.require(
        len(set(campaign_ids)) == len(campaign_ids), f"{at}.campaigns", "campaign ids must differ"
    )


def _absorb(c: Checker, place: str, prefix: str, check: Callable[[], None]) -> None:
    """A draft's violations from its own check, renamed to where it sits in the experiment."""
    try:
        check()
    except InvalidArgument as refused:
        for v in refused.violations:
            name = c.prefix + place + v.field.removeprefix(prefix)
            c.violations.append(FieldViolation(name, v.description))
