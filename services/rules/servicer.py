"""The gRPC edge of rules & risk."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import grpc

from loyalty.common.v1 import common_pb2
from loyalty.rules.v1 import rules_pb2 as pb
from loyalty.rules.v1 import rules_pb2_grpc as pb_grpc
from services.common import outbox
from services.common.db import current_time
from services.common.dead_letter_desk import DeadLetterDesk, DeadLetterRpcs
from services.common.errors import DomainError, FieldViolation, InvalidArgument, NotFound
from services.common.idempotency import RequestLog, fingerprint, idempotent_admin, key_reused
from services.common.outbox import Event
from services.common.paging import decode_token, encode_token, invalid_token
from services.common.timestamps import from_timestamp, to_timestamp
from services.common.validation import (
    MAX_REQUEST_ID,
    MAX_USER_ID,
    ascii_number,
    check_identifier,
    check_text,
    check_user_id,
    identifier_problem,
    raise_if,
    require_user_id,
    storable,
)
from services.rules import definitions, simulation
from services.rules import repository as repo
from services.rules.config import RulesConfig
from services.rules.evaluator import BudgetContention, Evaluator, assess
from services.rules.member_status import member_status
from services.rules.program import ProgramCache
from services.rules.settlement import Settlement

Context = grpc.aio.ServicerContext[Any, Any]
MAX_EVENTS = 500
NEEDS_ITEM = (pb.EVENT_TYPE_LESSON_COMPLETED, pb.EVENT_TYPE_TASK_COMPLETED)
CLOCK_SKEW = timedelta(minutes=5)
# ListVersions' kinds, as the repository names them (and the ConfigVersion field set).
CONFIG_KINDS = {
    pb.CONFIG_KIND_RULE: "rule",
    pb.CONFIG_KIND_CAMPAIGN: "campaign",
    pb.CONFIG_KIND_TIER: "tier",
    pb.CONFIG_KIND_BUDGET: "budget",
}
M = TypeVar("M")


def check_event(event: pb.Event, prefix: str = "event") -> None:
    bad: list[FieldViolation] = []

    def fail(field: str, description: str) -> None:
        bad.append(FieldViolation(f"{prefix}.{field}", description))

    for name, limit in (("event_id", MAX_REQUEST_ID), ("user_id", MAX_USER_ID)):
        problem = identifier_problem(getattr(event, name), limit)
        if problem is not None:
            fail(name, problem)
    if event.type == pb.EVENT_TYPE_UNSPECIFIED or event.type not in pb.EventType.values():
        fail("type", "must be a known event type")
    if event.type == pb.EVENT_TYPE_PURCHASE:
        if event.amount.amount_minor <= 0 or len(event.amount.currency) != 3:
            fail("amount", "a purchase needs amount_minor > 0 and a currency")
    if event.type in (pb.EVENT_TYPE_PURCHASE, pb.EVENT_TYPE_REFUND) and not event.order_id:
        fail("order_id", "is required for purchases and refunds")
    if event.type == pb.EVENT_TYPE_ONLINE_TIME and not 0 < event.minutes <= 24 * 60:
        fail("minutes", "online time needs minutes from 1 to 1440")
    if event.type in NEEDS_ITEM and not event.item_id:
        fail("item_id", "is required for lessons and tasks")
    for name in ("order_id", "item_id", "device_id", "ip", "referrer_id"):
        problem = identifier_problem(getattr(event, name), 128, required=False)
        if problem is not None:
            fail(name, problem)
    if bad:
        raise InvalidArgument.fields(bad)


def _check_draft(check: Callable[[M], None], draft: M, name: str, prefix: str) -> None:
    """`check` a draft sent in a list: its violations name the draft's place in the list."""
    try:
        check(draft)
    except InvalidArgument as exc:
        raise InvalidArgument.fields(
            [
                FieldViolation(f"{prefix}.{v.field.removeprefix(name + '.')}", v.description)
                for v in exc.violations
            ]
        ) from None


def _token_time(stamp: str) -> datetime:
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        raise invalid_token() from None


class RulesServicer(DeadLetterRpcs, pb_grpc.RulesServiceServicer):
    messages = pb

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: RulesConfig,
        settlement: Settlement,
        dead_letters: DeadLetterDesk,
    ) -> None:
        self.pool = pool
        self.config = config
        self.evaluator = Evaluator(config)
        self.programs = ProgramCache()
        self.settlement = settlement
        self.dead_letters = dead_letters
        self.requests = RequestLog(pool)

    async def _record(self, event: pb.Event, prefix: str = "event") -> pb.RecordEventResponse:
        check_event(event, prefix)
        print_ = fingerprint("RecordEvent", event)
        try:
            response = await self._record_once(event, print_, prefix, lock_budgets=False)
        except BudgetContention:  # rolled back; rare: a budget nearly spent, or a close race
            response = await self._record_once(event, print_, prefix, lock_budgets=True)
        # Credit (or reverse) right away so users see the points now; retried if it fails.
        await self.settlement.settle_soon(
            [
                event.user_id,
                *(a.beneficiary_user_id for a in response.awards if a.beneficiary_user_id),
            ]
        )
        return response

    async def _record_once(
        self, event: pb.Event, print_: bytes, prefix: str, lock_budgets: bool
    ) -> pb.RecordEventResponse:
        """One transaction: the stored answer for a replay, else the event evaluated."""
        async with self.pool.acquire() as conn, conn.transaction():
            now, generation = await repo.lock_user(conn, event.user_id)
            prior, signals = await repo.event_context(
                conn, event.user_id, event.event_id, event.device_id, event.ip
            )
            if prior is not None:
                if bytes(prior["payload_sha256"]) != print_:
                    raise key_reused(event.event_id)
                return pb.RecordEventResponse.FromString(prior["response"])
            occurred_at = self._occurred_at(event, now, prefix)
            program = await self.programs.at(conn, generation)
            response = await self.evaluator.evaluate(
                conn, program, event, occurred_at, signals, lock_budgets
            )
            await repo.save_event(conn, event, occurred_at, print_, response)
            return response

    def _occurred_at(self, event: pb.Event, now: datetime, prefix: str) -> datetime:
        if not event.HasField("occurred_at"):
            return now
        occurred_at = from_timestamp(event.occurred_at)
        if occurred_at > now + CLOCK_SKEW:
            raise InvalidArgument.fields(
                [FieldViolation(f"{prefix}.occurred_at", "must not be in the future")]
            )
        if occurred_at < now - self.config.max_event_age:
            raise InvalidArgument.fields(
                [
                    FieldViolation(
                        f"{prefix}.occurred_at",
                        f"must be within the last {self.config.max_event_age.days} days",
                    )
                ]
            )
        return occurred_at

    async def RecordEvent(
        self, request: pb.RecordEventRequest, context: Context
    ) -> pb.RecordEventResponse:
        return await self._record(request.event)

    async def RecordEvents(
        self, request: pb.RecordEventsRequest, context: Context
    ) -> pb.RecordEventsResponse:
        if not 0 < len(request.events) <= MAX_EVENTS:
            raise InvalidArgument.fields(
                [FieldViolation("events", f"must hold 1 to {MAX_EVENTS} events")]
            )
        results = []
        for index, event in enumerate(request.events):
            try:
                response = await self._record(event, f"events[{index}]")
            except DomainError as exc:
                results.append(
                    pb.RecordEventsResult(
                        error=common_pb2.Error(
                            code=exc.code.value[0],
                            reason=exc.reason,
                            message=exc.message,
                            metadata=dict(exc.metadata),
                        )
                    )
                )
            else:
                results.append(pb.RecordEventsResult(response=response))
        return pb.RecordEventsResponse(results=results)

    async def GetCheckInStatus(
        self, request: pb.GetCheckInStatusRequest, context: Context
    ) -> pb.GetCheckInStatusResponse:
        return (await self._member_status(request.user_id)).check_in

    async def CheckRisk(
        self, request: pb.CheckRiskRequest, context: Context
    ) -> pb.CheckRiskResponse:
        bad: list[FieldViolation] = []
        check_user_id(bad, request.user_id)
        check_identifier(bad, "device_id", request.device_id, 128, required=False)
        check_identifier(bad, "ip", request.ip, 128, required=False)
        check_text(bad, "action", request.action, 64, required=False)
        raise_if(bad)
        async with self.pool.acquire() as conn:
            risk = await assess(conn, self.config, request.user_id, request.device_id, request.ip)
        return pb.CheckRiskResponse(decision=risk.decision, reasons=risk.reasons)

    @idempotent_admin(pb.UpsertRuleResponse)
    async def UpsertRule(
        self, request: pb.UpsertRuleRequest, context: Context
    ) -> pb.UpsertRuleResponse:
        definitions.check_rule(request.rule)
        actor = self._actor(request.actor)
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.lock_rule(conn, request.rule.rule_id)
            stored = await repo.save_rule(conn, request.rule, actor)
        return pb.UpsertRuleResponse(rule=stored)

    @staticmethod
    def _actor(actor: str) -> str:
        """Who makes a configuration change: checked with the request, before any database
        work, and kept with the version it saves."""
        bad: list[FieldViolation] = []
        check_text(bad, "actor", actor, 128, required=False)
        raise_if(bad)
        return actor

    async def ListVersions(
        self, request: pb.ListVersionsRequest, context: Context
    ) -> pb.ListVersionsResponse:
        bad: list[FieldViolation] = []
        kind = CONFIG_KINDS.get(request.kind)
        if kind is None:
            bad.append(FieldViolation("kind", "must be RULE, CAMPAIGN, TIER or BUDGET"))
        if not definitions.valid_name(request.id):
            bad.append(FieldViolation("id", "lower-case letters, digits, '_.-', max 58"))
        if not 0 <= request.page_size <= 100:
            bad.append(FieldViolation("page_size", "between 0 and 100"))
        raise_if(bad)
        assert kind is not None
        before = None
        if request.page_token:
            (stamp,) = decode_token(request.page_token, 1)
            before = ascii_number(stamp)
            if before is None:
                raise invalid_token()
        limit = request.page_size or 20
        async with self.pool.acquire() as conn:
            rows = await repo.versions(conn, kind, request.id, before, limit + 1)
        response = pb.ListVersionsResponse()
        for row in rows[:limit]:
            found = response.versions.add(
                version=row["version"],
                create_time=to_timestamp(row["created_at"]),
                actor=row["actor"],
            )
            getattr(found, kind).MergeFromString(row["definition"])
        if len(rows) > limit:
            response.next_page_token = encode_token(str(rows[limit - 1]["version"]))
        return response

    async def ListRules(
        self, request: pb.ListRulesRequest, context: Context
    ) -> pb.ListRulesResponse:
        async with self.pool.acquire() as conn:
            return pb.ListRulesResponse(rules=await repo.all_rules(conn))

    @idempotent_admin(pb.UpsertCapGroupResponse)
    async def UpsertCapGroup(
        self, request: pb.UpsertCapGroupRequest, context: Context
    ) -> pb.UpsertCapGroupResponse:
        bad = []
        if not definitions.valid_name(request.name):
            bad.append(FieldViolation("name", "lower-case letters, digits, '_.-', max 58"))
        if not 0 < request.daily_cap <= definitions.MAX_POINTS:
            bad.append(FieldViolation("daily_cap", "must be > 0"))
        if bad:
            raise InvalidArgument.fields(bad)
        async with self.pool.acquire() as conn:
            await repo.save_cap_group(conn, request.name, request.daily_cap)
        return pb.UpsertCapGroupResponse(name=request.name, daily_cap=request.daily_cap)

    async def ListCapGroups(
        self, request: pb.ListCapGroupsRequest, context: Context
    ) -> pb.ListCapGroupsResponse:
        async with self.pool.acquire() as conn:
            _, generation = await repo.clock(conn)
            program = await self.programs.at(conn, generation)
        return pb.ListCapGroupsResponse(cap_groups=program.cap_group_list())

    @idempotent_admin(pb.UpsertCampaignResponse)
    async def UpsertCampaign(
        self, request: pb.UpsertCampaignRequest, context: Context
    ) -> pb.UpsertCampaignResponse:
        definitions.check_campaign(request.campaign)
        actor = self._actor(request.actor)
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await repo.new_version(
                conn,
                "campaign",
                request.campaign.campaign_id,
                request.campaign,
                actor,
            )
            await repo.save_campaign(conn, stored)
        return pb.UpsertCampaignResponse(campaign=stored)

    async def ListCampaigns(
        self, request: pb.ListCampaignsRequest, context: Context
    ) -> pb.ListCampaignsResponse:
        async with self.pool.acquire() as conn:
            return pb.ListCampaignsResponse(campaigns=await repo.all_campaigns(conn))

    @idempotent_admin(pb.UpsertBudgetResponse)
    async def UpsertBudget(
        self, request: pb.UpsertBudgetRequest, context: Context
    ) -> pb.UpsertBudgetResponse:
        definitions.check_budget(request.budget)
        actor = self._actor(request.actor)
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await repo.new_version(
                conn,
                "budget",
                request.budget.budget_id,
                request.budget,
                actor,
            )
            await repo.save_budget(conn, stored)
        return pb.UpsertBudgetResponse(budget=stored)

    @idempotent_admin(pb.DeleteBudgetResponse)
    async def DeleteBudget(
        self, request: pb.DeleteBudgetRequest, context: Context
    ) -> pb.DeleteBudgetResponse:
        if not definitions.valid_name(request.budget_id):
            raise InvalidArgument.fields(
                [FieldViolation("budget_id", "lower-case letters, digits, '_.-', max 58")]
            )
        async with self.pool.acquire() as conn:
            deleted = await repo.delete_budget(conn, request.budget_id)
        return pb.DeleteBudgetResponse(deleted=deleted)

    async def ListBudgets(
        self, request: pb.ListBudgetsRequest, context: Context
    ) -> pb.ListBudgetsResponse:
        async with self.pool.acquire() as conn:
            now = await current_time(conn)
            budgets = await repo.all_budgets(conn)
            day = self.evaluator.day_of(now)
            keys = {b.budget_id: definitions.period_key(b.period, day) for b in budgets}
            used = await repo.budget_usage(conn, list(keys.items()))
        return pb.ListBudgetsResponse(
            budgets=[
                pb.BudgetUsage(
                    budget=b, period_key=keys[b.budget_id], used_points=used.get(b.budget_id, 0)
                )
                for b in budgets
            ]
        )

    async def ListUserEvents(
        self, request: pb.ListUserEventsRequest, context: Context
    ) -> pb.ListUserEventsResponse:
        require_user_id(request.user_id)
        bad = []
        if not 0 <= request.page_size <= 100:
            bad.append(FieldViolation("page_size", "between 0 and 100"))
        if bad:
            raise InvalidArgument.fields(bad)
        before = None
        if request.page_token:
            stamp, event_id = decode_token(request.page_token, 2)
            before = (_token_time(stamp), event_id)
        limit = request.page_size or 20
        async with self.pool.acquire() as conn:
            rows = await repo.user_events(conn, request.user_id, before, limit)
        page = rows[:limit]
        response = pb.ListUserEventsResponse(
            events=[
                pb.UserEvent(
                    type=pb.EventType.Value(r["event_type"]),
                    occurred_at=to_timestamp(r["occurred_at"]),
                    record_time=to_timestamp(r["recorded_at"]),
                    outcome=pb.RecordEventResponse.FromString(r["response"]),
                    review=pb.ReviewStatus.Value(f"REVIEW_STATUS_{r['review']}")
                    if r["review"]
                    else pb.REVIEW_STATUS_UNSPECIFIED,
                )
                for r in page
            ]
        )
        if len(rows) > limit:
            last = page[-1]
            response.next_page_token = encode_token(
                last["recorded_at"].isoformat(), last["event_id"]
            )
        return response

    async def GetIssuanceReport(
        self, request: pb.GetIssuanceReportRequest, context: Context
    ) -> pb.GetIssuanceReportResponse:
        span = request.time_range
        async with self.pool.acquire() as conn:
            issued = await repo.issuance(
                conn,
                from_timestamp(span.start_time) if span.HasField("start_time") else None,
                from_timestamp(span.end_time) if span.HasField("end_time") else None,
                self.config.currency,
            )
        cost = self._cost(issued.points)
        return pb.GetIssuanceReportResponse(
            points_issued=issued.points,
            cost=cost,
            purchases=common_pb2.Money(
                amount_minor=issued.purchases, currency=self.config.currency
            ),
            issuance_ratio_ppm=(
                cost.amount_minor * 1_000_000 // issued.purchases if issued.purchases else 0
            ),
            by_rule=[
                pb.IssuedBy(id=r["id"], points=r["points"], cost=self._cost(r["points"]))
                for r in issued.by_rule
            ],
            by_campaign=[
                pb.IssuedBy(id=r["id"], points=r["points"], cost=self._cost(r["points"]))
                for r in issued.by_campaign
            ],
            points_in_review=issued.in_review,
            tier_points=issued.tier_points,
        )

    def _cost(self, points: int) -> common_pb2.Money:
        """What points cost at the configured point value (RULES_POINTS_PER_MAJOR_UNIT)."""
        return common_pb2.Money(
            amount_minor=points * 100 // self.config.points_per_major_unit,
            currency=self.config.currency,
        )

    @idempotent_admin(pb.UpsertTierResponse)
    async def UpsertTier(
        self, request: pb.UpsertTierRequest, context: Context
    ) -> pb.UpsertTierResponse:
        definitions.check_tier(request.tier)
        actor = self._actor(request.actor)
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await repo.new_version(conn, "tier", request.tier.tier_id, request.tier, actor)
            await repo.save_tier(conn, stored)
        return pb.UpsertTierResponse(tier=stored)

    async def ListTiers(
        self, request: pb.ListTiersRequest, context: Context
    ) -> pb.ListTiersResponse:
        async with self.pool.acquire() as conn:
            return pb.ListTiersResponse(tiers=await repo.all_tiers(conn))

    async def GetUserTier(
        self, request: pb.GetUserTierRequest, context: Context
    ) -> pb.GetUserTierResponse:
        return (await self._member_status(request.user_id)).tier

    async def SimulateEvents(
        self, request: pb.SimulateEventsRequest, context: Context
    ) -> pb.SimulateEventsResponse:
        if request.replay_days and request.events:
            raise InvalidArgument.fields([FieldViolation("events", "leave empty with replay_days")])
        if request.replay_days and not 0 < request.replay_days <= simulation.MAX_REPLAY_DAYS:
            raise InvalidArgument.fields([FieldViolation("replay_days", "1 to 30 days")])
        if not request.replay_days and not 0 < len(request.events) <= simulation.MAX_EVENTS:
            raise InvalidArgument.fields([FieldViolation("events", "1 to 1000 events")])
        for index, rule in enumerate(request.draft_rules):
            _check_draft(definitions.check_rule, rule, "rule", f"draft_rules[{index}]")
        for index, event in enumerate(request.events):
            check_event(event, f"events[{index}]")
        for index, campaign in enumerate(request.draft_campaigns):
            _check_draft(
                definitions.check_campaign, campaign, "campaign", f"draft_campaigns[{index}]"
            )
        events: Sequence[pb.Event] = request.events
        occurred = self._occurred_at
        async with self.pool.acquire() as conn:
            if request.replay_days:
                now, _ = await repo.clock(conn)
                since = now - timedelta(days=request.replay_days)
                recorded = await repo.recorded_since(conn, since, simulation.MAX_EVENTS)
                events = simulation.as_new_members(recorded)
                occurred = self._replayed_at  # recorded once, so within the window by then
            drafted = await simulation.simulate(
                conn, self.evaluator, occurred, events, request.draft_rules, request.draft_campaigns
            )
            current = await simulation.simulate(conn, self.evaluator, occurred, events)
        return pb.SimulateEventsResponse(
            results=drafted,
            total_points=sum(r.total_points for r in drafted),
            draft=simulation.summary(drafted, self._cost),
            current=simulation.summary(current, self._cost),
        )

    @staticmethod
    def _replayed_at(event: pb.Event, now: datetime, prefix: str) -> datetime:
        return from_timestamp(event.occurred_at) if event.HasField("occurred_at") else now

    async def ListReviews(
        self, request: pb.ListReviewsRequest, context: Context
    ) -> pb.ListReviewsResponse:
        if not 0 <= request.page_size <= 200:
            raise InvalidArgument.fields([FieldViolation("page_size", "between 0 and 200")])
        after = None
        if request.page_token:
            stamp, user_id, event_id = decode_token(request.page_token, 3)
            after = (_token_time(stamp), user_id, event_id)
        limit = request.page_size or 50
        async with self.pool.acquire() as conn:
            rows = await repo.reviews(conn, after, limit)
        page = rows[:limit]
        response = pb.ListReviewsResponse(
            reviews=[
                pb.Review(
                    user_id=r["user_id"],
                    event_id=r["event_id"],
                    event_type=pb.EventType.Value(r["event_type"]),
                    reasons=r["risk_reasons"],
                    points=r["points"],
                    record_time=to_timestamp(r["recorded_at"]),
                )
                for r in page
            ]
        )
        if len(rows) > limit:
            last = page[-1]
            response.next_page_token = encode_token(
                last["recorded_at"].isoformat(), last["user_id"], last["event_id"]
            )
        return response

    async def _decide(self, user_id: str, event_id: str, decision: str) -> int:
        bad: list[FieldViolation] = []
        check_user_id(bad, user_id)
        check_identifier(bad, "event_id", event_id, MAX_REQUEST_ID)
        raise_if(bad)
        async with self.pool.acquire() as conn, conn.transaction():
            _, generation = await repo.lock_user(conn, user_id)
            points = await repo.decide_review(conn, user_id, event_id, decision)
            if points is None:  # rolls back: no user row is left for a made-up id
                raise NotFound(
                    "REVIEW_NOT_FOUND",
                    "no awards of this event wait for review",
                    {"user_id": user_id, "event_id": event_id},
                )
            decided = {"event_id": event_id, "decision": decision, "points": points}
            await outbox.emit(conn, [Event("review.decided", user_id, decided)])
            # Points in review do not count toward a tier: the decision may move the member.
            tiers = (await self.programs.at(conn, generation)).tiers
            if tiers:
                await self.evaluator.evaluate_tier(conn, tiers, user_id)
        return points

    @idempotent_admin(pb.ApproveReviewResponse)
    async def ApproveReview(
        self, request: pb.ApproveReviewRequest, context: Context
    ) -> pb.ApproveReviewResponse:
        points = await self._decide(request.user_id, request.event_id, "APPROVED")
        await self.settlement.settle_soon([request.user_id])
        return pb.ApproveReviewResponse(points=points)

    @idempotent_admin(pb.RejectReviewResponse)
    async def RejectReview(
        self, request: pb.RejectReviewRequest, context: Context
    ) -> pb.RejectReviewResponse:
        points = await self._decide(request.user_id, request.event_id, "REJECTED")
        return pb.RejectReviewResponse(points=points)

    @staticmethod
    def _blacklist_key(kind: int, value: str) -> str:
        bad = []
        if kind == pb.BLACKLIST_KIND_UNSPECIFIED or kind not in pb.BlacklistKind.values():
            bad.append(FieldViolation("kind", "must be USER, DEVICE or IP"))
        check_identifier(bad, "value", value, 128)
        if bad:
            raise InvalidArgument.fields(bad)
        return pb.BlacklistKind.Name(kind).removeprefix("BLACKLIST_KIND_")  # type: ignore[arg-type]

    @idempotent_admin(pb.AddBlacklistEntryResponse)
    async def AddBlacklistEntry(
        self, request: pb.AddBlacklistEntryRequest, context: Context
    ) -> pb.AddBlacklistEntryResponse:
        kind = self._blacklist_key(request.kind, request.value)
        if not storable(request.reason, 500, required=False):
            raise InvalidArgument.fields([FieldViolation("reason", "at most 500 characters")])
        expires = from_timestamp(request.expire_time) if request.HasField("expire_time") else None
        async with self.pool.acquire() as conn:
            await repo.save_blacklist(conn, kind, request.value, request.reason, expires)
        return pb.AddBlacklistEntryResponse()

    async def ListBlacklist(
        self, request: pb.ListBlacklistRequest, context: Context
    ) -> pb.ListBlacklistResponse:
        async with self.pool.acquire() as conn:
            rows = await repo.blacklist(conn)
        entries = []
        for row in rows:
            entry = pb.BlacklistEntry(
                kind=pb.BlacklistKind.Value(f"BLACKLIST_KIND_{row['kind']}"),
                value=row["value"],
                reason=row["reason"],
            )
            if row["expires_at"] is not None:
                entry.expire_time.CopyFrom(to_timestamp(row["expires_at"]))
            entries.append(entry)
        return pb.ListBlacklistResponse(entries=entries)

    async def GetUserCaps(
        self, request: pb.GetUserCapsRequest, context: Context
    ) -> pb.GetUserCapsResponse:
        return pb.GetUserCapsResponse(caps=(await self._member_status(request.user_id)).caps)

    async def GetMemberStatus(
        self, request: pb.GetMemberStatusRequest, context: Context
    ) -> pb.GetMemberStatusResponse:
        return await self._member_status(request.user_id)

    async def _member_status(self, user_id: str) -> pb.GetMemberStatusResponse:
        require_user_id(user_id)
        return await member_status(self.pool, self.programs, self.evaluator, user_id)

    @idempotent_admin(pb.RemoveBlacklistEntryResponse)
    async def RemoveBlacklistEntry(
        self, request: pb.RemoveBlacklistEntryRequest, context: Context
    ) -> pb.RemoveBlacklistEntryResponse:
        kind = self._blacklist_key(request.kind, request.value)
        async with self.pool.acquire() as conn:
            removed = await repo.delete_blacklist(conn, kind, request.value)
        return pb.RemoveBlacklistEntryResponse(removed=removed)
