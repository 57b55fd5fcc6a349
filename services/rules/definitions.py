"""Rule definitions: validation and the pure arithmetic of awards (unit-tested on their own)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.validation import Checker

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,57}$")  # "rule:" + id stays a valid ledger source
MAX_POINTS = 10**9
MAX_NAME = 100  # an operator's name for a rule or campaign
MAX_EXPIRY_DAYS = 36_500
MAX_DESCRIPTION = 1000

PARAMS_FOR_KIND = {
    pb.RULE_KIND_CHECK_IN: "check_in",
    pb.RULE_KIND_ACTION: "action",
    pb.RULE_KIND_PURCHASE: "purchase",
    pb.RULE_KIND_TASK: "task",
    pb.RULE_KIND_ONLINE_TIME: "online_time",
    pb.RULE_KIND_INVITE: "invite",
}


NAME_RULE = "lower-case letters, digits, '_.-', max 58"


def valid_name(value: str) -> bool:
    return bool(_ID.match(value))


def check_rule(rule: pb.Rule) -> None:
    """Every problem of a rule definition, as field violations."""
    c = Checker("rule")
    c.require(valid_name(rule.rule_id), "rule_id", NAME_RULE)
    if c.require(rule.kind in PARAMS_FOR_KIND, "kind", "must be a known rule kind"):
        c.require(
            rule.WhichOneof("params") == PARAMS_FOR_KIND[rule.kind],
            PARAMS_FOR_KIND[rule.kind],
            "is required for this kind (and only it)",
        )
    c.require(
        rule.event_type != pb.EVENT_TYPE_UNSPECIFIED, "event_type", "must be a known event type"
    )
    for name in ("daily_cap", "weekly_cap", "monthly_cap", "lifetime_cap", "expiry_days"):
        c.require(getattr(rule, name) >= 0, name, "must be >= 0")
    # A lot's expiry must be a date the ledger can store (and a program can mean).
    c.require(rule.expiry_days <= MAX_EXPIRY_DAYS, "expiry_days", "at most 36500 (100 years)")
    c.require(
        not rule.cap_group or valid_name(rule.cap_group), "cap_group", "must be a cap group name"
    )
    which = rule.WhichOneof("params")
    if which is not None:
        _PARAMS_CHECKS[which](c, getattr(rule, which), which)
    _check_words(c, rule)
    c.done()


def _check_words(c: Checker, definition: pb.Rule | pb.Campaign) -> None:
    """The optional name and description operators give a rule or campaign."""
    c.text("name", definition.name, MAX_NAME, required=False)
    c.text("description", definition.description, MAX_DESCRIPTION, required=False)


def _positive(c: Checker, field: str, points: int) -> None:
    c.require(0 < points <= MAX_POINTS, field, "must be > 0")


def _check_check_in(c: Checker, params: pb.CheckInParams, name: str) -> None:
    table = params.streak_points
    c.require(
        bool(table) and all(0 < p <= MAX_POINTS for p in table),
        f"{name}.streak_points",
        "1+ entries, each > 0",
    )


def _check_fixed(
    c: Checker, params: pb.ActionParams | pb.TaskParams | pb.InviteParams, name: str
) -> None:
    _positive(c, f"{name}.points", params.points)


def _check_online_time(c: Checker, params: pb.OnlineTimeParams, name: str) -> None:
    _positive(c, f"{name}.points", params.points)
    c.require(params.per_minutes > 0, f"{name}.per_minutes", "must be > 0")


def _check_purchase(c: Checker, params: pb.PurchaseParams, name: str) -> None:
    _positive(c, f"{name}.points", params.points)
    c.require(params.per_amount_minor > 0, f"{name}.per_amount_minor", "must be > 0")
    c.require(
        bool(re.match(r"^[A-Z]{3}$", params.currency)),
        f"{name}.currency",
        "an ISO 4217 code, e.g. CNY",
    )
    c.require(0 <= params.pending_days <= 365, f"{name}.pending_days", "between 0 and 365")


# The checks of each kind's parameters (the `params` oneof's field names).
_PARAMS_CHECKS: dict[str, Callable[[Checker, Any, str], None]] = {
    "check_in": _check_check_in,
    "action": _check_fixed,
    "task": _check_fixed,
    "invite": _check_fixed,
    "online_time": _check_online_time,
    "purchase": _check_purchase,
}


def streak_day(last_day: date | None, length: int, today: date) -> int:
    """The streak day today's check-in makes: 0 if today is already done, 1 after a gap."""
    if last_day == today:
        return 0
    if last_day == today - timedelta(days=1):
        return length + 1
    return 1


def check_in_points(params: pb.CheckInParams, day: int) -> int:
    table = params.streak_points
    index = (day - 1) % len(table) if params.cycle else min(day, len(table)) - 1
    return int(table[index])


def purchase_points(params: pb.PurchaseParams, amount_minor: int) -> int:
    """Every full step earns the rule's points; the remainder earns nothing (rounding down)."""
    return (amount_minor // params.per_amount_minor) * params.points


def apply_caps(points: int, limits: Sequence[tuple[str, int]]) -> tuple[int, str]:
    """Cut `points` to the tightest remaining limit; name it when it cut anything."""
    capped_by = ""
    for name, remaining in limits:
        if remaining < points:
            points, capped_by = max(remaining, 0), name
    return points, capped_by


def online_points(params: pb.OnlineTimeParams, minutes: int) -> int:
    return (minutes // params.per_minutes) * params.points


@dataclass(frozen=True)
class Base:
    """What a rule's own arithmetic gives one event, before campaigns, tier, caps and budgets;
    `reason` says why nothing when `points` is 0."""

    points: int
    reason: str = ""


def base_points(rule: pb.Rule, event: pb.Event, streak_day: int) -> Base:
    """The rule's base points for the event (`streak_day`: the day a check-in makes)."""
    base = _BASE[rule.WhichOneof("params") or ""](rule, event, streak_day)
    if base.points <= 0 and not base.reason:
        return Base(0, "NOTHING_EARNED")
    return base


def _purchase_base(rule: pb.Rule, event: pb.Event, _: int) -> Base:
    if event.amount.currency != rule.purchase.currency:
        return Base(0, "CURRENCY_NOT_COVERED")
    return Base(purchase_points(rule.purchase, event.amount.amount_minor))


# Each rule kind's base points (the `params` oneof's field names); "" for a rule without.
_BASE: dict[str, Callable[[pb.Rule, pb.Event, int], Base]] = {
    "check_in": lambda rule, _, day: Base(check_in_points(rule.check_in, day)),
    "action": lambda rule, _, __: Base(rule.action.points),
    "invite": lambda rule, _, __: Base(rule.invite.points),
    "task": lambda rule, _, __: Base(rule.task.points),
    "online_time": lambda rule, event, _: Base(online_points(rule.online_time, event.minutes)),
    "purchase": _purchase_base,
    "": lambda _, __, ___: Base(0),
}


def maturity(rule: pb.Rule, occurred_at: datetime) -> datetime | None:
    """When a purchase's points become available (None: at once)."""
    if rule.WhichOneof("params") == "purchase" and rule.purchase.pending_days:
        return occurred_at + timedelta(days=rule.purchase.pending_days)
    return None


def expiry(
    rule: pb.Rule, occurred_at: datetime, matures_at: datetime | None, now: datetime
) -> datetime | None:
    """When the award's points expire (None: never). Counted from when they are credited,
    never before now: an event reported late must not earn points that are already expired,
    which the ledger would refuse."""
    if not rule.expiry_days:
        return None
    credited_at = max(occurred_at, matures_at or occurred_at, now)
    return credited_at + timedelta(days=rule.expiry_days)


def check_campaign(campaign: pb.Campaign) -> None:
    c = Checker("campaign")
    _check_words(c, campaign)
    c.require(valid_name(campaign.campaign_id), "campaign_id", "lower-case letters, digits, '_.-'")
    c.require(
        campaign.HasField("start_time")
        and campaign.HasField("end_time")
        and campaign.end_time.ToDatetime() > campaign.start_time.ToDatetime(),
        "end_time",
        "start_time and a later end_time",
    )
    c.require(
        bool(campaign.event_types)
        and all(t != pb.EVENT_TYPE_UNSPECIFIED for t in campaign.event_types),
        "event_types",
        "one or more known event types",
    )
    boost = campaign.WhichOneof("boost")
    if boost is None:
        c.fail("multiplier_percent", "a multiplier or a bonus")
    elif boost == "multiplier_percent":
        c.require(
            100 < campaign.multiplier_percent <= 10_000,
            "multiplier_percent",
            "must be > 100 (percent)",
        )
    else:
        c.require(0 < campaign.bonus_points <= MAX_POINTS, "bonus_points", "must be > 0")
    c.require(
        campaign.audience != pb.AUDIENCE_NEW_USERS or campaign.new_user_days > 0,
        "new_user_days",
        "must be > 0 for new users",
    )
    c.require(
        not campaign.budget_id or valid_name(campaign.budget_id), "budget_id", "must be a budget id"
    )
    c.done()


def check_budget(budget: pb.Budget) -> None:
    c = Checker("budget")
    c.require(valid_name(budget.budget_id), "budget_id", "lower-case letters, digits, '_.-'")
    c.require(budget.period != pb.BUDGET_PERIOD_UNSPECIFIED, "period", "DAY, MONTH or TOTAL")
    c.require(0 <= budget.points_limit <= 10**15, "points_limit", "must be >= 0")
    c.require(budget.money_limit.amount_minor >= 0, "money_limit", "must be >= 0")
    c.require(
        budget.points_limit > 0 or budget.money_limit.amount_minor > 0,
        "points_limit",
        "a points or a money limit is needed",
    )
    c.done()


def campaign_extra(
    campaigns: Sequence[pb.Campaign], points: int, max_percent: int, tier_percent: int = 100
) -> int:
    """Extra points from the tier's and campaigns' multipliers, which add up (tier 150% with a
    200% campaign = 250%) but never exceed `max_percent` together; fixed bonuses come on top."""
    percent = tier_percent + sum(
        c.multiplier_percent - 100
        for c in campaigns
        if c.WhichOneof("boost") == "multiplier_percent"
    )
    multiplied = points * min(percent, max_percent) // 100
    bonus = sum(c.bonus_points for c in campaigns if c.WhichOneof("boost") == "bonus_points")
    return multiplied - points + bonus


def extra_shares(
    campaigns: Sequence[pb.Campaign], points: int, tier_percent: int, extra: int
) -> tuple[int, list[int]]:
    """Split the extra points an award finally got (after the multiplier ceiling, caps and
    budgets) between the tier and each campaign, in proportion to what each adds alone; the
    parts add up to `extra` exactly (largest remainders). Returns (tier part, campaign parts)."""
    weights = [points * (tier_percent - 100)] + [
        points * (c.multiplier_percent - 100)
        if c.WhichOneof("boost") == "multiplier_percent"
        else 100 * c.bonus_points
        for c in campaigns
    ]
    weights = [max(w, 0) for w in weights]
    total = sum(weights)
    if not total or extra <= 0:
        return 0, [0] * len(campaigns)
    parts = [extra * w // total for w in weights]
    by_remainder = sorted(range(len(weights)), key=lambda i: -(extra * weights[i] % total))
    for i in by_remainder[: extra - sum(parts)]:
        parts[i] += 1
    return parts[0], parts[1:]


def period_key(period: int, day: date) -> str:
    if period == pb.BUDGET_PERIOD_DAY:
        return f"day:{day.isoformat()}"
    if period == pb.BUDGET_PERIOD_MONTH:
        return f"month:{day.year:04d}-{day.month:02d}"
    return "total"


def check_tier(tier: pb.Tier) -> None:
    c = Checker("tier")
    c.require(valid_name(tier.tier_id), "tier_id", "lower-case letters, digits, '_.-'")
    c.text("name", tier.name, 100)
    c.require(tier.min_points_12m >= 0, "min_points_12m", "must be >= 0")
    c.require(100 <= tier.multiplier_percent <= 1000, "multiplier_percent", "between 100 and 1000")
    c.done()


def tier_for(tiers: Sequence[pb.Tier], points_12m: int) -> tuple[pb.Tier | None, pb.Tier | None]:
    """The highest tier the points reach, and the next one up (tiers sorted by threshold)."""
    reached = [t for t in tiers if t.min_points_12m <= points_12m]
    above = [t for t in tiers if t.min_points_12m > points_12m]
    return (reached[-1] if reached else None), (above[0] if above else None)


def budget_points(budget: pb.Budget, points_per_major_unit: int) -> int:
    """The budget's limit in points: the tighter of its points and money limits."""
    limits = [budget.points_limit] if budget.points_limit else []
    if budget.money_limit.amount_minor:
        limits.append(budget.money_limit.amount_minor * points_per_major_unit // 100)
    return min(limits)
