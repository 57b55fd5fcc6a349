"""The gRPC edge of rules & risk: protobuf in and out. Each use case lives in its own module
(events, configuration, reviews, risk, reports, member_status); the servicer only translates."""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc

from loyalty.rules.v1 import rules_pb2 as pb
from loyalty.rules.v1 import rules_pb2_grpc as pb_grpc
from services.common.dead_letter_desk import DeadLetterDesk, DeadLetterRpcs
from services.common.errors import DomainError
from services.common.idempotency import RequestLog, idempotent_admin
from services.common.paging import LIST, Pager
from services.common.timestamps import from_timestamp, to_timestamp
from services.common.validation import Checker, require_user_id
from services.rules import risk
from services.rules.config import RulesConfig
from services.rules.configuration import Configuration, check_actor
from services.rules.evaluator import Evaluator
from services.rules.events import Events
from services.rules.experiments import Experiments
from services.rules.member_status import member_status
from services.rules.program import ProgramCache
from services.rules.reports import Reports
from services.rules.reviews import Reviews
from services.rules.settlement import Settlement

Context = grpc.aio.ServicerContext[Any, Any]


def _user_event(row: asyncpg.Record) -> pb.UserEvent:
    return pb.UserEvent(
        type=pb.EventType.Value(row["event_type"]),
        occurred_at=to_timestamp(row["occurred_at"]),
        record_time=to_timestamp(row["recorded_at"]),
        outcome=pb.RecordEventResponse.FromString(row["response"]),
        review=pb.ReviewStatus.Value(f"REVIEW_STATUS_{row['review']}")
        if row["review"]
        else pb.REVIEW_STATUS_UNSPECIFIED,
    )


def _review(row: asyncpg.Record) -> pb.Review:
    return pb.Review(
        user_id=row["user_id"],
        event_id=row["event_id"],
        event_type=pb.EventType.Value(row["event_type"]),
        reasons=row["risk_reasons"],
        points=row["points"],
        record_time=to_timestamp(row["recorded_at"]),
        device_id=row["device_id"],
        ip=row["ip"],
    )


def _blacklist_entry(row: asyncpg.Record) -> pb.BlacklistEntry:
    entry = pb.BlacklistEntry(
        kind=pb.BlacklistKind.Value(f"BLACKLIST_KIND_{row['kind']}"),
        value=row["value"],
        reason=row["reason"],
    )
    if row["expires_at"] is not None:
        entry.expire_time.CopyFrom(to_timestamp(row["expires_at"]))
    return entry


def _pager(size: int, token: str, parts: int = 1) -> Pager:
    c = Checker()
    pager = Pager(c, LIST, size, token, parts)
    c.done()
    return pager


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
        self.events = Events(pool, config, self.evaluator, self.programs, settlement)
        self.configuration = Configuration(pool, self.evaluator, self.programs)
        self.reviews = Reviews(pool, self.evaluator, self.programs, settlement)
        self.reports = Reports(pool, config, self.events)
        self.experiments = Experiments(pool, config, settlement.ledger)
        self.dead_letters = dead_letters
        self.requests = RequestLog(pool)

    # --- events ---------------------------------------------------------------------------

    async def RecordEvent(
        self, request: pb.RecordEventRequest, context: Context
    ) -> pb.RecordEventResponse:
        return await self.events.record(request.event)

    async def RecordEvents(
        self, request: pb.RecordEventsRequest, context: Context
    ) -> pb.RecordEventsResponse:
        results = await self.events.record_many(list(request.events))
        return pb.RecordEventsResponse(
            results=[
                pb.RecordEventsResult(error=r.as_message())
                if isinstance(r, DomainError)
                else pb.RecordEventsResult(response=r)
                for r in results
            ]
        )

    async def ListUserEvents(
        self, request: pb.ListUserEventsRequest, context: Context
    ) -> pb.ListUserEventsResponse:
        require_user_id(request.user_id)
        pager = _pager(request.page_size, request.page_token, parts=2)
        rows = await self.events.history(request.user_id, pager)
        page, token = pager.page(rows, lambda r: [r["recorded_at"].isoformat(), r["event_id"]])
        return pb.ListUserEventsResponse(
            events=[_user_event(r) for r in page], next_page_token=token
        )

    # --- what a member sees ---------------------------------------------------------------

    async def _member_status(self, user_id: str) -> pb.GetMemberStatusResponse:
        require_user_id(user_id)
        return await member_status(self.pool, self.programs, self.evaluator, user_id)

    async def GetMemberStatus(
        self, request: pb.GetMemberStatusRequest, context: Context
    ) -> pb.GetMemberStatusResponse:
        return await self._member_status(request.user_id)

    async def GetCheckInStatus(
        self, request: pb.GetCheckInStatusRequest, context: Context
    ) -> pb.GetCheckInStatusResponse:
        return (await self._member_status(request.user_id)).check_in

    async def GetUserTier(
        self, request: pb.GetUserTierRequest, context: Context
    ) -> pb.GetUserTierResponse:
        return (await self._member_status(request.user_id)).tier

    async def GetUserCaps(
        self, request: pb.GetUserCapsRequest, context: Context
    ) -> pb.GetUserCapsResponse:
        return pb.GetUserCapsResponse(caps=(await self._member_status(request.user_id)).caps)

    # --- configuration --------------------------------------------------------------------

    @idempotent_admin(pb.UpsertRuleResponse)
    async def UpsertRule(
        self, request: pb.UpsertRuleRequest, context: Context
    ) -> pb.UpsertRuleResponse:
        return pb.UpsertRuleResponse(
            rule=await self.configuration.save_rule(request.rule, request.actor)
        )

    @idempotent_admin(pb.UpsertCampaignResponse)
    async def UpsertCampaign(
        self, request: pb.UpsertCampaignRequest, context: Context
    ) -> pb.UpsertCampaignResponse:
        stored = await self.configuration.save_campaign(request.campaign, request.actor)
        return pb.UpsertCampaignResponse(campaign=stored)

    @idempotent_admin(pb.UpsertBudgetResponse)
    async def UpsertBudget(
        self, request: pb.UpsertBudgetRequest, context: Context
    ) -> pb.UpsertBudgetResponse:
        stored = await self.configuration.save_budget(request.budget, request.actor)
        return pb.UpsertBudgetResponse(budget=stored)

    @idempotent_admin(pb.UpsertTierResponse)
    async def UpsertTier(
        self, request: pb.UpsertTierRequest, context: Context
    ) -> pb.UpsertTierResponse:
        stored = await self.configuration.save_tier(request.tier, request.actor)
        return pb.UpsertTierResponse(tier=stored)

    @idempotent_admin(pb.UpsertCapGroupResponse)
    async def UpsertCapGroup(
        self, request: pb.UpsertCapGroupRequest, context: Context
    ) -> pb.UpsertCapGroupResponse:
        await self.configuration.save_cap_group(request.name, request.daily_cap)
        return pb.UpsertCapGroupResponse(name=request.name, daily_cap=request.daily_cap)

    @idempotent_admin(pb.DeleteBudgetResponse)
    async def DeleteBudget(
        self, request: pb.DeleteBudgetRequest, context: Context
    ) -> pb.DeleteBudgetResponse:
        deleted = await self.configuration.delete_budget(request.budget_id)
        return pb.DeleteBudgetResponse(deleted=deleted)

    async def ListVersions(
        self, request: pb.ListVersionsRequest, context: Context
    ) -> pb.ListVersionsResponse:
        pager = _pager(request.page_size, request.page_token)
        kind, rows = await self.configuration.versions(request.kind, request.id, pager)
        page, token = pager.page(rows, lambda r: [str(r["version"])])
        response = pb.ListVersionsResponse(next_page_token=token)
        for row in page:
            found = response.versions.add(
                version=row["version"],
                create_time=to_timestamp(row["created_at"]),
                actor=row["actor"],
            )
            getattr(found, kind).MergeFromString(row["definition"])
        return response

    async def ListRules(
        self, request: pb.ListRulesRequest, context: Context
    ) -> pb.ListRulesResponse:
        return pb.ListRulesResponse(rules=await self.configuration.rules())

    async def ListCapGroups(
        self, request: pb.ListCapGroupsRequest, context: Context
    ) -> pb.ListCapGroupsResponse:
        return pb.ListCapGroupsResponse(cap_groups=await self.configuration.cap_groups())

    async def ListCampaigns(
        self, request: pb.ListCampaignsRequest, context: Context
    ) -> pb.ListCampaignsResponse:
        return pb.ListCampaignsResponse(campaigns=await self.configuration.campaigns())

    async def ListBudgets(
        self, request: pb.ListBudgetsRequest, context: Context
    ) -> pb.ListBudgetsResponse:
        return pb.ListBudgetsResponse(budgets=await self.configuration.budgets())

    async def ListTiers(
        self, request: pb.ListTiersRequest, context: Context
    ) -> pb.ListTiersResponse:
        return pb.ListTiersResponse(tiers=await self.configuration.tiers())

    # --- reports --------------------------------------------------------------------------

    async def GetIssuanceReport(
        self, request: pb.GetIssuanceReportRequest, context: Context
    ) -> pb.GetIssuanceReportResponse:
        return await self.reports.issuance(request.time_range)

    async def SimulateEvents(
        self, request: pb.SimulateEventsRequest, context: Context
    ) -> pb.SimulateEventsResponse:
        return await self.reports.simulate(request)

    # --- experiments ----------------------------------------------------------------------

    @idempotent_admin(pb.UpsertExperimentResponse)
    async def UpsertExperiment(
        self, request: pb.UpsertExperimentRequest, context: Context
    ) -> pb.UpsertExperimentResponse:
        check_actor(request.actor)
        stored = await self.experiments.save(request.experiment)
        return pb.UpsertExperimentResponse(experiment=stored)

    @idempotent_admin(pb.StartExperimentResponse)
    async def StartExperiment(
        self, request: pb.StartExperimentRequest, context: Context
    ) -> pb.StartExperimentResponse:
        check_actor(request.actor)
        started = await self.experiments.start(request.experiment_id)
        return pb.StartExperimentResponse(experiment=started)

    @idempotent_admin(pb.ConcludeExperimentResponse)
    async def ConcludeExperiment(
        self, request: pb.ConcludeExperimentRequest, context: Context
    ) -> pb.ConcludeExperimentResponse:
        check_actor(request.actor)
        return await self.experiments.conclude(
            request.experiment_id, request.promote_arm_id, request.actor
        )

    async def GetExperiment(
        self, request: pb.GetExperimentRequest, context: Context
    ) -> pb.GetExperimentResponse:
        return await self.experiments.get(request.experiment_id)

    async def ListExperiments(
        self, request: pb.ListExperimentsRequest, context: Context
    ) -> pb.ListExperimentsResponse:
        return pb.ListExperimentsResponse(experiments=await self.experiments.every())

    async def ListAssignments(
        self, request: pb.ListAssignmentsRequest, context: Context
    ) -> pb.ListAssignmentsResponse:
        pager = _pager(request.page_size, request.page_token)
        after = pager.after[0] if pager.after else ""
        rows = await self.experiments.assignments(request.experiment_id, after, pager.fetch)
        page, token = pager.page(rows, lambda r: [r["user_id"]])
        return pb.ListAssignmentsResponse(
            assignments=[
                pb.ArmAssignment(
                    experiment_id=request.experiment_id,
                    arm_id=r["arm_id"],
                    user_id=r["user_id"],
                    assign_time=to_timestamp(r["assigned_at"]),
                )
                for r in page
            ],
            next_page_token=token,
        )

    # --- reviews --------------------------------------------------------------------------

    async def ListReviews(
        self, request: pb.ListReviewsRequest, context: Context
    ) -> pb.ListReviewsResponse:
        pager = _pager(request.page_size, request.page_token, parts=3)
        rows = await self.reviews.waiting(pager)
        page, token = pager.page(
            rows, lambda r: [r["recorded_at"].isoformat(), r["user_id"], r["event_id"]]
        )
        return pb.ListReviewsResponse(
            reviews=[_review(r) for r in page],
            next_page_token=token,
            total_size=await self.reviews.waiting_count(),
        )

    @idempotent_admin(pb.ApproveReviewResponse)
    async def ApproveReview(
        self, request: pb.ApproveReviewRequest, context: Context
    ) -> pb.ApproveReviewResponse:
        points = await self.reviews.approve(request.user_id, request.event_id)
        return pb.ApproveReviewResponse(points=points)

    @idempotent_admin(pb.RejectReviewResponse)
    async def RejectReview(
        self, request: pb.RejectReviewRequest, context: Context
    ) -> pb.RejectReviewResponse:
        points = await self.reviews.reject(request.user_id, request.event_id)
        return pb.RejectReviewResponse(points=points)

    # --- risk -----------------------------------------------------------------------------

    async def CheckRisk(
        self, request: pb.CheckRiskRequest, context: Context
    ) -> pb.CheckRiskResponse:
        found = await risk.check(
            self.pool, self.config, request.user_id, request.device_id, request.ip, request.action
        )
        return pb.CheckRiskResponse(decision=found.decision, reasons=found.reasons)

    @idempotent_admin(pb.AddBlacklistEntryResponse)
    async def AddBlacklistEntry(
        self, request: pb.AddBlacklistEntryRequest, context: Context
    ) -> pb.AddBlacklistEntryResponse:
        expires = from_timestamp(request.expire_time) if request.HasField("expire_time") else None
        await risk.add(self.pool, request.kind, request.value, request.reason, expires)
        return pb.AddBlacklistEntryResponse()

    @idempotent_admin(pb.RemoveBlacklistEntryResponse)
    async def RemoveBlacklistEntry(
        self, request: pb.RemoveBlacklistEntryRequest, context: Context
    ) -> pb.RemoveBlacklistEntryResponse:
        removed = await risk.remove(self.pool, request.kind, request.value)
        return pb.RemoveBlacklistEntryResponse(removed=removed)

    async def ListBlacklist(
        self, request: pb.ListBlacklistRequest, context: Context
    ) -> pb.ListBlacklistResponse:
        rows = await risk.entries(self.pool)
        return pb.ListBlacklistResponse(entries=[_blacklist_entry(r) for r in rows])
