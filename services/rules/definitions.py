"""Rule definitions: validation and the pure arithmetic of awards (unit-tested on their own)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, timedelta

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.errors import FieldViolation, InvalidArgument

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,57}$")  # "rule:" + id stays a valid ledger source
MAX_POINTS = 10**9

PARAMS_FOR_KIND = {
    pb.RULE_KIND_CHECK_IN: "check_in",
    pb.RULE_KIND_ACTION: "action",
    pb.RULE_KIND_PURCHASE: "purchase",
    pb.RULE_KIND_TASK: "task",
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
    for name in ("daily_cap", "lifetime_cap", "expiry_days"):
        if getattr(rule, name) < 0:
            bad.append(FieldViolation(f"rule.{name}", "must be >= 0"))
    if rule.cap_group and not valid_name(rule.cap_group):
        bad.append(FieldViolation("rule.cap_group", "must be a cap group name"))
    which = rule.WhichOneof("params")
    if which == "check_in":
        table = rule.check_in.streak_points
        if not table or any(not 0 < p <= MAX_POINTS for p in table):
            bad.append(FieldViolation("rule.check_in.streak_points", "1+ entries, each > 0"))
    elif which in ("action", "task"):
        if not 0 < getattr(rule, which).points <= MAX_POINTS:
            bad.append(FieldViolation(f"rule.{which}.points", "must be > 0"))
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
