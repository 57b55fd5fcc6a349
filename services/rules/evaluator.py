"""From one event to a risk decision and awards, inside the event's transaction.

The user's row is locked by the caller, so streaks, completions and cap counters of one user
change one event at a time: caps hold exactly under any concurrency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.db import Conn
from services.common.timestamps import to_timestamp
from services.rules import definitions
from services.rules import repository as repo
from services.rules.config import RulesConfig


@dataclass(frozen=True)
class Risk:
    decision: pb.Decision.ValueType
    reasons: list[str]


async def assess(conn: Conn, config: RulesConfig, user_id: str, device_id: str, ip: str) -> Risk:
    """Blacklists, then velocity (events this user sent in the last minute)."""
    reasons = [
        f"BLACKLISTED_{kind}" for kind in await repo.blacklisted(conn, user_id, device_id, ip)
    ]
    if await repo.recent_events(conn, user_id) >= config.velocity_per_minute:
        reasons.append("VELOCITY")
    return Risk(pb.DECISION_DENY if reasons else pb.DECISION_ALLOW, reasons)


class Evaluator:
    def __init__(self, config: RulesConfig) -> None:
        self.config = config

    def day_of(self, moment: datetime) -> date:
        return moment.astimezone(self.config.zone).date()

    async def evaluate(
        self, conn: Conn, event: pb.Event, occurred_at: datetime
    ) -> pb.RecordEventResponse:
        risk = await assess(conn, self.config, event.user_id, event.device_id, event.ip)
        response = pb.RecordEventResponse(
            event_id=event.event_id, decision=risk.decision, risk_reasons=risk.reasons
        )
        if risk.decision == pb.DECISION_DENY:
            return response
        if event.type == pb.EVENT_TYPE_REFUND:
            response.reversed_points = await repo.reverse_order(
                conn, event.user_id, event.order_id, event.event_id
            )
        for rule in await repo.rules_for(conn, event.type):
            award = await self._award(conn, event, occurred_at, rule)
            response.awards.append(award)
            response.total_points += award.points
        return response

    async def _award(
        self, conn: Conn, event: pb.Event, occurred_at: datetime, rule: pb.Rule
    ) -> pb.Award:
        award = pb.Award(rule_id=rule.rule_id)
        day = self.day_of(occurred_at)
        matures_at: datetime | None = None
        kind = rule.WhichOneof("params")
        if kind == "check_in":
            last_day, length = await repo.streak(conn, event.user_id, rule.rule_id)
            award.streak_day = definitions.streak_day(last_day, length, day)
            if award.streak_day == 0:
                award.reason = "ALREADY_CHECKED_IN"
                return award
            await repo.save_streak(conn, event.user_id, rule.rule_id, day, award.streak_day)
            award.base_points = definitions.check_in_points(rule.check_in, award.streak_day)
        elif kind == "action":
            award.base_points = rule.action.points
        elif kind == "task":
            item = event.item_id if rule.task.per_item else ""
            if not await repo.complete(conn, event.user_id, rule.rule_id, item, event.event_id):
                award.reason = "ALREADY_COMPLETED"
                return award
            award.base_points = rule.task.points
        elif kind == "purchase":
            params = rule.purchase
            if event.amount.currency != params.currency:
                award.reason = "CURRENCY_NOT_COVERED"
                return award
            award.base_points = definitions.purchase_points(params, event.amount.amount_minor)
            if params.pending_days:
                matures_at = occurred_at + timedelta(days=params.pending_days)
        award.points, award.capped_by = await self._cap(
            conn, event.user_id, rule, day, award.base_points
        )
        if award.points == 0:
            award.reason = award.reason or ("CAPPED" if award.base_points else "NOTHING_EARNED")
            return award
        expires_at = None
        if rule.expiry_days:
            expires_at = max(occurred_at, matures_at or occurred_at) + timedelta(
                days=rule.expiry_days
            )
        await repo.add_award(conn, event, rule.rule_id, award.points, matures_at, expires_at)
        if matures_at is not None:
            award.pending = True
            award.mature_time.CopyFrom(to_timestamp(matures_at))
        return award

    async def _cap(
        self, conn: Conn, user_id: str, rule: pb.Rule, day: date, points: int
    ) -> tuple[int, str]:
        """Apply the rule's daily and lifetime caps and its group's daily cap, then count."""
        today = f"day:{day.isoformat()}"
        scope = f"rule:{rule.rule_id}"
        keys = [(scope, today), (scope, "life")]
        group_cap = await repo.cap_group(conn, rule.cap_group) if rule.cap_group else None
        if group_cap is not None:
            keys.append((f"group:{rule.cap_group}", today))
        if points <= 0:
            return 0, ""
        used = await repo.counted(conn, user_id, keys)
        limits = []
        if rule.daily_cap:
            limits.append(("rule_daily_cap", rule.daily_cap - used.get(f"{scope}/{today}", 0)))
        if rule.lifetime_cap:
            limits.append(("rule_lifetime_cap", rule.lifetime_cap - used.get(f"{scope}/life", 0)))
        if group_cap is not None:
            group_used = used.get(f"group:{rule.cap_group}/{today}", 0)
            limits.append((f"group:{rule.cap_group}", group_cap - group_used))
        granted, capped_by = definitions.apply_caps(points, limits)
        if granted:
            await repo.count(conn, user_id, keys, granted)
        return granted, capped_by
