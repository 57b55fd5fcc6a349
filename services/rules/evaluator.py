"""From one event to a risk decision and awards, inside the event's transaction.

The user's row is locked by the caller, so streaks, completions and cap counters of one user
change one event at a time: caps hold exactly under any concurrency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from loyalty.rules.v1 import rules_pb2 as pb
from services.common import outbox
from services.common.db import Conn
from services.common.outbox import Event
from services.common.timestamps import to_timestamp
from services.rules import definitions
from services.rules.config import RulesConfig
from services.rules.event_state import EventState, Spend, cap_keys
from services.rules.program import Program
from services.rules.repository import awards as awards_repo
from services.rules.repository import budgets as budgets_repo
from services.rules.repository import events as events_repo
from services.rules.repository import members as members_repo
from services.rules.repository import risk as risk_repo


@dataclass(frozen=True)
class Risk:
    decision: pb.Decision.ValueType
    reasons: list[str]


async def assess(
    conn: Conn,
    config: RulesConfig,
    user_id: str,
    device_id: str,
    ip: str,
    event: pb.Event | None = None,
    signals: risk_repo.RiskSignals | None = None,
) -> Risk:
    """DENY on a blacklist match or a velocity breach; REVIEW on softer farming signals (a
    burst of events, many accounts on one device or IP, a referrer inviting in bulk, purchases
    by a user who keeps refunding); else ALLOW. Always with reasons."""
    if signals is None:
        signals = await risk_repo.risk_signals(conn, user_id, device_id, ip)
    deny = [f"BLACKLISTED_{kind}" for kind in signals.blacklisted]
    if signals.recent_events >= config.velocity_per_minute:
        deny.append("VELOCITY")
    if deny:
        return Risk(pb.DECISION_DENY, deny)
    review = []
    if signals.recent_events >= config.review_per_minute:
        review.append("BURST")
    if device_id and signals.device_accounts >= config.accounts_per_device:
        review.append("SHARED_DEVICE")
    if ip and signals.ip_accounts >= config.accounts_per_ip:
        review.append("SHARED_IP")
    if (
        event is not None
        and event.referrer_id
        and (await risk_repo.invites_today(conn, event.referrer_id) >= config.invites_per_day)
    ):
        review.append("INVITE_BURST")
    if (
        event is not None
        and event.type == pb.EVENT_TYPE_PURCHASE
        and (await risk_repo.refunds_this_month(conn, user_id) >= config.refunds_per_month)
    ):
        review.append("REFUND_LOOP")
    return Risk(pb.DECISION_REVIEW if review else pb.DECISION_ALLOW, review)


@dataclass(frozen=True)
class Occasion:
    """One event under evaluation: what every rule's award reads, and where it writes."""

    event: pb.Event
    occurred_at: datetime
    now: datetime  # the database's time (the transaction's start)
    signals: risk_repo.RiskSignals  # read with the user locked
    state: EventState  # reads kept and writes pending; the caller flushes it


@dataclass
class Grant:
    """What the rules of one event share: campaigns, budgets, tier and the review flag."""

    campaigns: list[pb.Campaign]
    budget: Budgets
    tier_percent: int
    in_review: bool


@dataclass(frozen=True)
class Earning:
    """Who earns an award (the event's member, or a referrer), on which day, from what."""

    earner: str
    day: date
    grant: Grant


@dataclass(frozen=True)
class Claim:
    """What a rule claimed in the database before it earns: a check-in's streak day, an
    invite's referrer (who earns), or why the event earns nothing ("" when it may earn)."""

    reason: str = ""
    streak_day: int = 0
    earner: str = ""


class Evaluator:
    def __init__(self, config: RulesConfig) -> None:
        self.config = config

    def day_of(self, moment: datetime) -> date:
        return moment.astimezone(self.config.zone).date()

    async def evaluate(
        self, conn: Conn, program: Program, occasion: Occasion, lock_budgets: bool = False
    ) -> pb.RecordEventResponse:
        """The event's risk decision and awards, their writes left pending in `occasion.state`
        (see event_state.py). Its flush raises BudgetContention unless `lock_budgets` (see
        Budgets)."""
        event = occasion.event
        risk = await assess(
            conn, self.config, event.user_id, event.device_id, event.ip, event, occasion.signals
        )
        response = pb.RecordEventResponse(
            event_id=event.event_id, decision=risk.decision, risk_reasons=risk.reasons
        )
        if risk.decision == pb.DECISION_DENY:
            return response
        if event.type == pb.EVENT_TYPE_REFUND:
            response.reversed_points = await awards_repo.reverse_order(
                conn, event.user_id, event.order_id, event.event_id
            )
        if event.referrer_id:
            response.referral = await members_repo.record_referral(
                conn, event.user_id, event.referrer_id, event.event_id
            )
        in_review = risk.decision == pb.DECISION_REVIEW
        rules = program.rules_for(event.type)
        if rules:
            await self._awards(conn, program, occasion, rules, in_review, lock_budgets, response)
        if in_review and response.total_points:
            occasion.state.emit([_review_opened(event, response.total_points, risk.reasons)])
        # A refund can move the member down as surely as an award moves them up.
        if program.tiers and (response.total_points or response.reversed_points):
            await occasion.state.flush(conn)  # the tier counts this event's awards
            changed = await self.evaluate_tier(conn, program.tiers, event.user_id)
            if changed is not None:
                response.new_tier_id = changed
        return response

    async def _awards(
        self,
        conn: Conn,
        program: Program,
        occasion: Occasion,
        rules: list[pb.Rule],
        in_review: bool,
        lock_budgets: bool,
        response: pb.RecordEventResponse,
    ) -> None:
        """Each rule's award for the event, added to `response`."""
        state = occasion.state
        campaigns = await self._campaigns(conn, program, occasion)
        budget = await Budgets.open(
            conn,
            state,
            program.budgets_for([c.budget_id for c in campaigns if c.budget_id]),
            self.day_of(occasion.occurred_at),
            self.config.points_per_major_unit,
            locked=lock_budgets,
        )
        tiers = program.tiers
        current = await state.tier(conn, occasion.event.user_id) if tiers else ""
        tier_percent = next((t.multiplier_percent for t in tiers if t.tier_id == current), 100)
        grant = Grant(campaigns, budget, tier_percent, in_review)
        for rule in rules:
            award = await self._award(conn, program, occasion, rule, grant)
            response.awards.append(award)
            response.total_points += award.points
        budget.close(state)

    async def evaluate_tier(self, conn: Conn, tiers: list[pb.Tier], user_id: str) -> str | None:
        """Move the user to the tier their last 12 months earn (up or down); the new tier's id
        when it changed, else None."""
        tier, _ = definitions.tier_for(tiers, await members_repo.points_12m(conn, user_id))
        before = await members_repo.current_tier(conn, user_id)
        after = tier.tier_id if tier is not None else ""
        if after == before:
            return None
        await members_repo.set_tier(conn, user_id, before, after)
        await outbox.emit(
            conn, [Event("tier.changed", user_id, {"from": before or None, "to": after or None})]
        )
        return after

    async def _campaigns(
        self, conn: Conn, program: Program, occasion: Occasion
    ) -> list[pb.Campaign]:
        event, occurred_at = occasion.event, occasion.occurred_at
        found = []
        for campaign in program.active_campaigns(occurred_at):
            if event.type not in campaign.event_types:
                continue
            if campaign.audience == pb.AUDIENCE_NEW_USERS:
                since = await occasion.state.since(conn, event.user_id)
                if occurred_at - since > timedelta(days=campaign.new_user_days):
                    continue
            found.append(campaign)
        return found

    async def _claim(self, conn: Conn, rule: pb.Rule, occasion: Occasion, day: date) -> Claim:
        """What must hold in the database before the rule earns, claimed now: a check-in
        extends the streak once a day, a task pays once (per item), an invite pays its
        referrer once per invitee."""
        kind, event = rule.WhichOneof("params"), occasion.event
        if kind == "check_in":
            last_day, length = await occasion.state.streak(conn, rule.rule_id)
            streak_day = definitions.streak_day(last_day, length, day)
            if streak_day == 0:
                return Claim("ALREADY_CHECKED_IN")
            occasion.state.save_streak(rule.rule_id, day, streak_day)
            return Claim(streak_day=streak_day)
        if kind == "task":
            item = event.item_id if rule.task.per_item else ""
            done = await events_repo.complete(
                conn, event.user_id, rule.rule_id, item, event.event_id
            )
            return Claim() if done else Claim("ALREADY_COMPLETED")
        if kind == "invite":
            referrer = await members_repo.referrer_of(conn, event.user_id)
            if referrer is None:
                return Claim("NO_REFERRER")
            if not await members_repo.reward_invite(conn, referrer, event.user_id, rule.rule_id):
                return Claim("ALREADY_REWARDED")
            # Lock the referrer too: invitations form a forest (no loops), so the order
            # invitee-then-referrer can never deadlock.
            await members_repo.lock_user(conn, referrer)
            return Claim(earner=referrer)
        return Claim()

    async def _award(
        self, conn: Conn, program: Program, occasion: Occasion, rule: pb.Rule, grant: Grant
    ) -> pb.Award:
        """One rule's award: claim, base points (pure), then the shared tail of campaigns,
        tier, caps and budgets; kept unless nothing is left."""
        event = occasion.event
        day = self.day_of(occasion.occurred_at)
        award = pb.Award(rule_id=rule.rule_id, rule_version=rule.version)
        claim = await self._claim(conn, rule, occasion, day)
        award.streak_day = claim.streak_day
        base = (
            definitions.Base(0, claim.reason)
            if claim.reason
            else definitions.base_points(rule, event, claim.streak_day)
        )
        if base.reason:
            award.reason = base.reason
            return award
        award.base_points = base.points
        award.beneficiary_user_id = claim.earner
        earner = claim.earner or event.user_id
        earning = Earning(earner, day, grant)
        keys = await self._limit(conn, program, rule, earning, occasion.state, award)
        decided = program.decider(award)
        if decided is not None:
            award.experiment_id, award.arm_id = decided
        if award.points == 0:
            award.reason = "CAPPED"
            return award
        occasion.state.count(earner, keys, award.points)
        self._keep(occasion, rule, award, grant.in_review)
        return award

    async def _limit(
        self,
        conn: Conn,
        program: Program,
        rule: pb.Rule,
        earning: Earning,
        state: EventState,
        award: pb.Award,
    ) -> list[tuple[str, str]]:
        """Campaigns and tier add to the base; caps and budgets cut: the award's points and
        what they are made of. Returns the counters the points count in."""
        grant, earner, day = earning.grant, earning.earner, earning.day
        # The tier multiplies the event's own user's points, not a referrer's.
        earner_tier = 100 if award.beneficiary_user_id else grant.tier_percent
        campaigns = grant.campaigns
        extra = definitions.campaign_extra(
            campaigns, award.base_points, self.config.max_multiplier_percent, earner_tier
        )
        points, award.capped_by, keys = await _caps(
            conn, state, program, earner, rule, day, award.base_points + extra
        )
        extra = max(0, points - award.base_points)
        points, cut_by = grant.budget.take(points, extra, [c.budget_id for c in campaigns if extra])
        award.capped_by = cut_by or award.capped_by
        award.points = points
        award.campaign_points = max(0, points - award.base_points)
        if award.campaign_points:
            award.campaign_ids.extend(c.campaign_id for c in campaigns)
            award.tier_points, shares = definitions.extra_shares(
                campaigns, award.base_points, earner_tier, award.campaign_points
            )
            award.campaign_shares.extend(shares)
        return keys

    @staticmethod
    def _keep(occasion: Occasion, rule: pb.Rule, award: pb.Award, in_review: bool) -> None:
        """Store the award, due at its maturity and expiring by the rule."""
        matures_at = definitions.maturity(rule, occasion.occurred_at)
        expires_at = definitions.expiry(rule, occasion.occurred_at, matures_at, occasion.now)
        occasion.state.add_award(
            awards_repo.award_row(
                occasion.event,
                occasion.occurred_at,
                rule,
                award,
                matures_at,
                expires_at,
                in_review,
            )
        )
        award.in_review = in_review
        if matures_at is not None:
            award.pending = True
            award.mature_time.CopyFrom(to_timestamp(matures_at))


async def _caps(
    conn: Conn,
    state: EventState,
    program: Program,
    user_id: str,
    rule: pb.Rule,
    day: date,
    points: int,
) -> tuple[int, str, list[tuple[str, str]]]:
    """Cut to the rule's daily, weekly, monthly and lifetime caps and its group's daily cap;
    return the points, what cut them, and the counters to count them in."""
    caps = cap_keys(program, rule, day)
    keys = [key for key, _, _ in caps]
    used = await state.counted(conn, user_id, keys)
    limits = [(name, cap - n) for (_, cap, name), n in zip(caps, used, strict=True) if cap]
    granted, capped_by = definitions.apply_caps(points, limits)
    return granted, capped_by, keys


def _review_opened(event: pb.Event, points: int, reasons: list[str]) -> Event:
    opened = {
        "event_id": event.event_id,
        "event_type": pb.EventType.Name(event.type).removeprefix("EVENT_TYPE_"),
        "points": points,
        "reasons": list(reasons),
    }
    return Event("review.opened", event.user_id, opened)


class BudgetContention(Exception):
    """An optimistic budget spend lost a race or would cut an award: evaluate again with the
    budget rows locked from the start."""


class Budgets:
    """The budgets an event's awards draw on.

    Global budgets bound every award; a campaign's budget bounds only the extra points the
    campaign adds. Budgets are hot rows every event touches, so by default their use is read
    without a lock and spent at the end (the flush of the event's state) with a conditional
    update that holds the row only until commit. When that spend would cut an award, or loses a
    race, BudgetContention is raised and the event runs again with `locked=True`: rows locked
    once, in id order (after the user's row), so concurrent events never overspend and never
    deadlock.
    """

    def __init__(
        self,
        budgets: list[pb.Budget],
        day: date,
        used: dict[str, int],
        points_per_major: int,
        locked: bool,
    ) -> None:
        self.budgets = {b.budget_id: b for b in budgets}
        self.limits = {b.budget_id: definitions.budget_points(b, points_per_major) for b in budgets}
        self.day = day
        self.used = used
        self.locked = locked
        self.spent: dict[str, int] = {}
        self.cut = False  # some award was cut or refused by a budget
        self._spends: list[Spend] = []

    @classmethod
    async def open(
        cls,
        conn: Conn,
        state: EventState,
        budgets: list[pb.Budget],
        day: date,
        points_per_major: int,
        locked: bool,
    ) -> Budgets:
        keys = [(b.budget_id, definitions.period_key(b.period, day)) for b in budgets]
        if not keys:
            used = {}
        elif locked:
            used = await budgets_repo.lock_budget_usage(conn, keys)
        else:
            used = await state.budget_usage(conn, keys)
        return cls(budgets, day, used, points_per_major, locked)

    def _allow(self, budget_id: str, amount: int) -> int:
        budget = self.budgets.get(budget_id)
        if budget is None or amount <= 0:
            return amount
        left = max(self.limits[budget_id] - self.used.get(budget_id, 0), 0)
        if amount <= left:
            return amount
        return 0 if budget.over_budget == pb.OVER_BUDGET_REFUSE else left

    def take(self, points: int, extra: int, campaign_budgets: list[str]) -> tuple[int, str]:
        """Points allowed out of `points` (of which `extra` came from campaigns), and the
        budget that cut them ("" if none); records what the award will spend."""
        cut_by = ""
        allowed_extra = extra
        for budget_id in sorted(set(campaign_budgets) - {""}):
            allowed = self._allow(budget_id, allowed_extra)
            if allowed < allowed_extra:
                allowed_extra, cut_by = allowed, f"budget:{budget_id}"
        points -= extra - allowed_extra
        for budget_id, budget in sorted(self.budgets.items()):
            if budget.applies_to_all:
                allowed = self._allow(budget_id, points)
                if allowed < points:
                    allowed_extra = max(0, allowed_extra - (points - allowed))
                    points, cut_by = allowed, f"budget:{budget_id}"
        for budget_id, budget in self.budgets.items():
            share = (
                points
                if budget.applies_to_all
                else (allowed_extra if budget_id in campaign_budgets else 0)
            )
            if share:
                self.used[budget_id] = self.used.get(budget_id, 0) + share
                self.spent[budget_id] = self.spent.get(budget_id, 0) + share
        self.cut = self.cut or bool(cut_by)
        return points, cut_by

    def close(self, state: EventState) -> None:
        """Spend what the awards took when `state` is flushed; raises BudgetContention (see
        the class) now, or then from the flush."""
        if not self.spent:
            return
        if self.cut and not self.locked:
            raise BudgetContention()
        self._spends = [
            (
                budget_id,
                definitions.period_key(self.budgets[budget_id].period, self.day),
                n,
                None if self.locked else self.limits[budget_id],
            )
            for budget_id, n in sorted(self.spent.items())
        ]
        state.spend(self._spends, self._settled)

    async def _settled(self, conn: Conn, used: dict[str, int] | None) -> None:
        if used is None:
            raise BudgetContention()
        # The award that reaches a budget's limit announces it (once: the next finds it spent).
        exhausted = [
            Event(
                "budget.exhausted",
                None,
                {"budget_id": budget_id, "period_key": period, "limit": self.limits[budget_id]},
            )
            for budget_id, period, n, _ in self._spends
            if used.get(budget_id, 0) >= self.limits[budget_id] > used.get(budget_id, 0) - n
        ]
        await outbox.emit(conn, exhausted)
