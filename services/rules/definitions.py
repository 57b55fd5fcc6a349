"""Rule definitions: validation and the pure arithmetic of awards (unit-tested on their own)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, timedelta

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.errors import FieldViolation, InvalidArgument
from services.common.validation import check_text

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,57}$")  # "rule:" + id stays a valid ledger source
MAX_POINTS = 10**9

PARAMS_FOR_KIND = {
    pb.RULE_KIND_CHECK_IN: "check_in",
    pb.RULE_KIND_ACTION: "action",
    pb.RULE_KIND_PURCHASE: "purchase",
    pb.RULE_KIND_TASK: "task",
    pb.RULE_KIND_ONLINE_TIME: "online_time",
    pb.RULE_KIND_INVITE: "invite",
}


def valid_name(value: str) -> bool:
    return bool(_ID.match(value))


def check_rule(rule: pb.Rule) -> None:
    """Every problem of a rule definition, as field violations."""
    bad: list[FieldViolation] = []
    if not valid_name(rule.rule_id):
        bad.append(FieldViolation("rule.rule_id", "lower-case letters, digits, '_.-', max 58"))
    if rule.kind not in PARAMS_FOR_KIND:
        bad.append(FieldViolation("rule.kind", "must be a known rule kind"))
    elif rule.WhichOneof("params") != PARAMS_FOR_KIND[rule.kind]:
        bad.append(
            FieldViolation(
                f"rule.{PARAMS_FOR_KIND[rule.kind]}", "is required for this kind (and only it)"
            )
        )
    if rule.event_type == pb.EVENT_TYPE_UNSPECIFIED or rule.event_type not in pb.EventType.values():
        bad.append(FieldViolation("rule.event_type", "must be a known event type"))
    for name in ("daily_cap", "weekly_cap", "monthly_cap", "lifetime_cap", "expiry_days"):
        if getattr(rule, name) < 0:
            bad.append(FieldViolation(f"rule.{name}", "must be >= 0"))
    if rule.cap_group and not valid_name(rule.cap_group):
        bad.append(FieldViolation("rule.cap_group", "must be a cap group name"))
    which = rule.WhichOneof("params")
    if which == "check_in":
        table = rule.check_in.streak_points
        if not table or any(not 0 < p <= MAX_POINTS for p in table):
            bad.append(FieldViolation("rule.check_in.streak_points", "1+ entries, each > 0"))
    elif which in ("action", "task", "invite"):
        if not 0 < getattr(rule, which).points <= MAX_POINTS:
            bad.append(FieldViolation(f"rule.{which}.points", "must be > 0"))
    elif which == "online_time":
        if not 0 < rule.online_time.points <= MAX_POINTS:
            bad.append(FieldViolation("rule.online_time.points", "must be > 0"))
        if rule.online_time.per_minutes <= 0:
            bad.append(FieldViolation("rule.online_time.per_minutes", "must be > 0"))
    elif which == "purchase":
        params = rule.purchase
        if not 0 < params.points <= MAX_POINTS:
            bad.append(FieldViolation("rule.purchase.points", "must be > 0"))
        if params.per_amount_minor <= 0:
            bad.append(FieldViolation("rule.purchase.per_amount_minor", "must be > 0"))
        if not re.match(r"^[A-Z]{3}$", params.currency):
            bad.append(FieldViolation("rule.purchase.currency", "an ISO 4217 code, e.g. CNY"))
        if not 0 <= params.pending_days <= 365:
            bad.append(FieldViolation("rule.purchase.pending_days", "between 0 and 365"))
    if bad:
        raise InvalidArgument.fields(bad)


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


def check_campaign(campaign: pb.Campaign) -> None:
    bad: list[FieldViolation] = []
    if not valid_name(campaign.campaign_id):
        bad.append(FieldViolation("campaign.campaign_id", "lower-case letters, digits, '_.-'"))
    if (
        not campaign.HasField("start_time")
        or not campaign.HasField("end_time")
        or (campaign.end_time.ToDatetime() <= campaign.start_time.ToDatetime())
    ):
        bad.append(FieldViolation("campaign.end_time", "start_time and a later end_time"))
    if not campaign.event_types or any(
        t == pb.EVENT_TYPE_UNSPECIFIED or t not in pb.EventType.values()
        for t in campaign.event_types
    ):
        bad.append(FieldViolation("campaign.event_types", "one or more known event types"))
    boost = campaign.WhichOneof("boost")
    if boost is None:
        bad.append(FieldViolation("campaign.multiplier_percent", "a multiplier or a bonus"))
    elif boost == "multiplier_percent" and not 100 < campaign.multiplier_percent <= 10_000:
        bad.append(FieldViolation("campaign.multiplier_percent", "must be > 100 (percent)"))
    elif boost == "bonus_points" and not 0 < campaign.bonus_points <= MAX_POINTS:
        bad.append(FieldViolation("campaign.bonus_points", "must be > 0"))
    if campaign.audience == pb.AUDIENCE_NEW_USERS and campaign.new_user_days <= 0:
        bad.append(FieldViolation("campaign.new_user_days", "must be > 0 for new users"))
    if campaign.budget_id and not valid_name(campaign.budget_id):
        bad.append(FieldViolation("campaign.budget_id", "must be a budget id"))
    if bad:
        raise InvalidArgument.fields(bad)


def check_budget(budget: pb.Budget) -> None:
    bad: list[FieldViolation] = []
    if not valid_name(budget.budget_id):
        bad.append(FieldViolation("budget.budget_id", "lower-case letters, digits, '_.-'"))
    if budget.period == pb.BUDGET_PERIOD_UNSPECIFIED or budget.period not in (
        pb.BudgetPeriod.values()
    ):
        bad.append(FieldViolation("budget.period", "DAY, MONTH or TOTAL"))
    if budget.points_limit < 0 or budget.points_limit > 10**15:
        bad.append(FieldViolation("budget.points_limit", "must be >= 0"))
    if budget.money_limit.amount_minor < 0:
        bad.append(FieldViolation("budget.money_limit", "must be >= 0"))
    if budget.points_limit == 0 and budget.money_limit.amount_minor == 0:
        bad.append(FieldViolation("budget.points_limit", "a points or a money limit is needed"))
    if bad:
        raise InvalidArgument.fields(bad)


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
    bad: list[FieldViolation] = []
    if not valid_name(tier.tier_id):
        bad.append(FieldViolation("tier.tier_id", "lower-case letters, digits, '_.-'"))
    check_text(bad, "tier.name", tier.name, 100)
    if tier.min_points_12m < 0:
        bad.append(FieldViolation("tier.min_points_12m", "must be >= 0"))
    if not 100 <= tier.multiplier_percent <= 1000:
        bad.append(FieldViolation("tier.multiplier_percent", "between 100 and 1000"))
    if bad:
        raise InvalidArgument.fields(bad)


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
