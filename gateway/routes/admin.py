"""Admin routes (scope `admin`): rules, cap groups, blacklist, ledger reports and audit.

Rules, campaigns, tiers, budgets, items and lotteries travel in the gateway's dialect of their
protobuf messages (gateway/dialect.py): the contract stays in one place (protos/) for HTTP and
gRPC alike, and the OpenAPI document types every field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field, StrictInt

from gateway import auth, risky, roles
from gateway.backends import Backends
from gateway.dialect import IsoDatetime, from_json, model_for, to_json
from gateway.routes.common import (
    PAGE_SIZE,
    WAITS,
    Operator,
    PageSize,
    PageToken,
    backends,
    idempotency_key,
)
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.mall.v1 import mall_pb2 as mpb
from loyalty.rules.v1 import rules_pb2 as rpb
from loyalty.webhooks.v1 import webhooks_pb2 as wpb

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(auth.operator)])
Services = Annotated[Backends, Depends(backends)]
Name = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,57}$")]


Json = dict[str, Any]
NEEDS_WORDS = (
    "read; program (rules, campaigns, tiers, cap groups, reviews, the mall, blacklists, dead "
    "letters); adjust (member adjustments); simulate; finance (budgets, expiry runs, the "
    "audits); decide (approvals); admin (webhooks)"
)
# The caller's Idempotency-Key, sent as the admin RPC's request_id: the same key and body
# answer the same result, the same key with another body 422.
Idem = Annotated[str, Depends(idempotency_key)]


def _typed(message: Any) -> Any:
    """The dialect model of a protobuf message type (see gateway/dialect.py)."""
    return model_for(message.DESCRIPTOR)


def _body(message: Any) -> Any:
    return model_for(message.DESCRIPTOR, request=True)


if TYPE_CHECKING:  # the request models are made at run time from the protos
    RuleIn = BaseModel
    CampaignIn = BaseModel
    TierIn = BaseModel
    BudgetIn = BaseModel
    ItemIn = BaseModel
    LotteryIn = BaseModel
    SimulationIn = BaseModel
else:
    RuleIn = _body(rpb.Rule)
    CampaignIn = _body(rpb.Campaign)
    TierIn = _body(rpb.Tier)
    BudgetIn = _body(rpb.Budget)
    ItemIn = _body(mpb.Item)
    LotteryIn = _body(mpb.Lottery)
    SimulationIn = _body(rpb.SimulateEventsRequest)


class Session(BaseModel):
    user_id: str
    roles: list[str] = Field(description="the caller's roles (viewer, operator, finance, admin)")
    can: list[str] = Field(description="what the roles allow beyond reading: " + NEEDS_WORDS)
    adjustment_limit: int = Field(
        description="most points adjusted at once without a second person"
    )


@router.get("/me", response_model=Session)
async def session(principal: Operator, request: Request) -> Session:
    """Who the caller is to the console: their roles and what those allow."""
    limit = request.app.state.authenticator.settings.adjustment_limit
    can = sorted(need for need, allowed in roles.ALLOWED.items() if principal.roles & allowed)
    return Session(
        user_id=principal.user_id,
        roles=sorted(principal.roles),
        can=can,
        adjustment_limit=limit,
    )


@router.get("/rules", response_model=_typed(rpb.ListRulesResponse))
async def list_rules(services: Services) -> Json:
    """Every rule."""
    return to_json(await services.rules.ListRules(rpb.ListRulesRequest(), timeout=services.timeout))


@router.put("/rules/{rule_id}", response_model=_typed(rpb.Rule), responses=WAITS)
async def put_rule(
    rule_id: Name,
    services: Services,
    idem: Idem,
    rule: RuleIn,
    operator: Operator,
    request: Request,
) -> Any:
    """Create or replace a rule (a new version when it changes). One that, replayed over the
    last week's events, costs more than the program in force waits for approval (202)."""
    draft = _parse(rule, rpb.Rule(rule_id=rule_id))
    if (pending := await risky.costlier(request, operator, draft)) is not None:
        return pending
    return await _upsert(
        services.rules.UpsertRule,
        rpb.UpsertRuleRequest,
        "rule",
        rule_id,
        rule,
        services.admin_timeout,
        idem,
        actor=operator.user_id,
    )


def _parse(body: BaseModel, message: Any) -> Any:
    return from_json(body.model_dump(exclude_none=True), message)


async def _upsert(
    call: Any,
    request_type: Any,
    field: str,
    key: str,
    body: BaseModel,
    deadline: float,
    request_id: str,
    **extra: str,
) -> Json:
    """Parse `body` into the request's `field` message, set its id from the path, send it in
    `request_type(field=..., request_id=..., **extra)` and answer with what the backend
    stored."""
    parsed = _parse(body, type(getattr(request_type(), field))())
    setattr(parsed, f"{field}_id", key)
    request = request_type(**{field: parsed}, request_id=request_id, **extra)
    reply = await call(request, timeout=deadline)
    return to_json(getattr(reply, field))


def _versions_route(kind: str, config: rpb.ConfigKind.ValueType) -> None:
    async def list_versions(
        config_id: Name,
        services: Services,
        page_size: PageSize = PAGE_SIZE,
        page_token: PageToken = "",
    ) -> Json:
        request = rpb.ListVersionsRequest(
            kind=config, id=config_id, page_size=page_size, page_token=page_token
        )
        return to_json(await services.rules.ListVersions(request, timeout=services.timeout))

    router.add_api_route(
        f"/{kind}/{{config_id}}/versions",
        list_versions,
        methods=["GET"],
        response_model=_typed(rpb.ListVersionsResponse),
        name=f"list_{kind.replace('-', '_')}_versions",
        summary=f"List {kind} versions",
        description=f"Every saved version of one of the {kind}, newest first, with who saved it "
        "and when; pass `next_page_token` back for older ones.",
    )


for _kind, _config in (
    ("rules", rpb.CONFIG_KIND_RULE),
    ("campaigns", rpb.CONFIG_KIND_CAMPAIGN),
    ("tiers", rpb.CONFIG_KIND_TIER),
    ("budgets", rpb.CONFIG_KIND_BUDGET),
):
    _versions_route(_kind, _config)


@router.get("/campaigns", response_model=_typed(rpb.ListCampaignsResponse))
async def list_campaigns(services: Services) -> Json:
    """Every campaign."""
    return to_json(
        await services.rules.ListCampaigns(rpb.ListCampaignsRequest(), timeout=services.timeout)
    )


@router.put("/campaigns/{campaign_id}", response_model=_typed(rpb.Campaign), responses=WAITS)
async def put_campaign(
    campaign_id: Name,
    services: Services,
    idem: Idem,
    campaign: CampaignIn,
    operator: Operator,
    request: Request,
) -> Any:
    """Create or replace a campaign (a time-boxed multiplier or bonus). One that raises the
    last week's replayed cost waits for approval (202)."""
    draft = _parse(campaign, rpb.Campaign(campaign_id=campaign_id))
    if (pending := await risky.costlier(request, operator, draft)) is not None:
        return pending
    return await _upsert(
        services.rules.UpsertCampaign,
        rpb.UpsertCampaignRequest,
        "campaign",
        campaign_id,
        campaign,
        services.admin_timeout,
        idem,
        actor=operator.user_id,
    )


@router.get("/tiers", response_model=_typed(rpb.ListTiersResponse))
async def list_tiers(services: Services) -> Json:
    """Every tier, lowest first."""
    return to_json(await services.rules.ListTiers(rpb.ListTiersRequest(), timeout=services.timeout))


@router.put("/tiers/{tier_id}", response_model=_typed(rpb.Tier))
async def put_tier(
    tier_id: Name, services: Services, idem: Idem, tier: TierIn, operator: Operator
) -> Json:
    """Create or replace a tier."""
    return await _upsert(
        services.rules.UpsertTier,
        rpb.UpsertTierRequest,
        "tier",
        tier_id,
        tier,
        services.admin_timeout,
        idem,
        actor=operator.user_id,
    )


@router.post("/simulations", response_model=_typed(rpb.SimulateEventsResponse))
async def simulate(services: Services, body: SimulationIn) -> Json:
    """Preview events against current or draft rules; changes nothing."""
    request = _parse(body, rpb.SimulateEventsRequest())
    # Two evaluations of up to 1,000 events: an operator's wait, not an app's.
    deadline = max(services.timeout * 10, services.admin_timeout * 3)
    return to_json(await services.rules.SimulateEvents(request, timeout=deadline))


@router.get("/budgets", response_model=_typed(rpb.ListBudgetsResponse))
async def list_budgets(services: Services) -> Json:
    """Every budget with its use in the current period."""
    return to_json(
        await services.rules.ListBudgets(rpb.ListBudgetsRequest(), timeout=services.timeout)
    )


@router.put("/budgets/{budget_id}", response_model=_typed(rpb.Budget), responses=WAITS)
async def put_budget(
    budget_id: Name,
    services: Services,
    idem: Idem,
    budget: BudgetIn,
    operator: Operator,
    request: Request,
) -> Any:
    """Create or replace a points budget. Raising a limit waits for approval (202)."""
    new = _parse(budget, rpb.Budget(budget_id=budget_id))
    if (pending := await risky.raised(request, operator, budget_id, new)) is not None:
        return pending
    return await _upsert(
        services.rules.UpsertBudget,
        rpb.UpsertBudgetRequest,
        "budget",
        budget_id,
        budget,
        services.admin_timeout,
        idem,
        actor=operator.user_id,
    )


@router.delete(
    "/budgets/{budget_id}", response_model=_typed(rpb.DeleteBudgetResponse), responses=WAITS
)
async def delete_budget(
    budget_id: Name, services: Services, idem: Idem, operator: Operator, request: Request
) -> Any:
    """Delete a budget: awards are no longer limited by it. Waits for approval (202)."""
    if (pending := await risky.raised(request, operator, budget_id, None)) is not None:
        return pending
    reply = await services.rules.DeleteBudget(
        rpb.DeleteBudgetRequest(budget_id=budget_id, request_id=idem),
        timeout=services.admin_timeout,
    )
    return to_json(reply)


@router.get("/reviews", response_model=_typed(rpb.ListReviewsResponse))
async def list_reviews(
    services: Services,
    page_size: PageSize = PAGE_SIZE,
    page_token: PageToken = "",
) -> Json:
    """Events whose points wait for an operator, oldest first."""
    return to_json(
        await services.rules.ListReviews(
            rpb.ListReviewsRequest(page_size=page_size, page_token=page_token),
            timeout=services.timeout,
        )
    )


@router.get("/cap-groups", response_model=_typed(rpb.ListCapGroupsResponse))
async def list_cap_groups(services: Services) -> Json:
    """Every cap group (a daily cap shared by several rules), with the rules in it."""
    return to_json(
        await services.rules.ListCapGroups(rpb.ListCapGroupsRequest(), timeout=services.timeout)
    )


class ReviewDecision(BaseModel):
    decision: Literal["approve", "reject"]
    points: int


@router.post("/reviews/{user_id}/{event_id}/{decision}")
async def decide_review(
    user_id: Annotated[str, Path(min_length=1, max_length=128)],
    event_id: Annotated[str, Path(min_length=1, max_length=256)],
    decision: Literal["approve", "reject"],
    services: Services,
    idem: Idem,
) -> ReviewDecision:
    """Approve (credit) or reject (never credit) a reviewed event's points."""
    if decision == "approve":
        reply: Any = await services.rules.ApproveReview(
            rpb.ApproveReviewRequest(user_id=user_id, event_id=event_id, request_id=idem),
            timeout=services.admin_timeout,
        )
    else:
        reply = await services.rules.RejectReview(
            rpb.RejectReviewRequest(user_id=user_id, event_id=event_id, request_id=idem),
            timeout=services.admin_timeout,
        )
    return ReviewDecision(decision=decision, points=reply.points)


class CapGroup(BaseModel):
    daily_cap: StrictInt = Field(gt=0, le=10**9)


@router.put("/cap-groups/{name}", response_model=_typed(rpb.UpsertCapGroupResponse))
async def put_cap_group(name: Name, body: CapGroup, services: Services, idem: Idem) -> Json:
    """Create or replace a cap group's daily cap."""
    reply = await services.rules.UpsertCapGroup(
        rpb.UpsertCapGroupRequest(name=name, daily_cap=body.daily_cap, request_id=idem),
        timeout=services.admin_timeout,
    )
    return to_json(reply)


class BlacklistEntry(BaseModel):
    kind: Literal["USER", "DEVICE", "IP"]
    value: str = Field(min_length=1, max_length=128)
    reason: str = Field(default="", max_length=500)
    expires_at: IsoDatetime | None = None


@router.post("/blacklist", status_code=204)
async def add_blacklist(entry: BlacklistEntry, services: Services, idem: Idem) -> None:
    """Blacklist a user, device or IP (until `expires_at`, or for good)."""
    request = rpb.AddBlacklistEntryRequest(
        kind=rpb.BlacklistKind.Value(f"BLACKLIST_KIND_{entry.kind}"),
        value=entry.value,
        reason=entry.reason,
        request_id=idem,
    )
    if entry.expires_at is not None:
        request.expire_time.FromDatetime(entry.expires_at)
    await services.rules.AddBlacklistEntry(request, timeout=services.admin_timeout)


@router.get("/blacklist", response_model=_typed(rpb.ListBlacklistResponse))
async def list_blacklist(services: Services) -> Json:
    """Every blacklist entry in force."""
    return to_json(
        await services.rules.ListBlacklist(rpb.ListBlacklistRequest(), timeout=services.timeout)
    )


class Removed(BaseModel):
    removed: bool


@router.delete("/blacklist/{kind}/{value}")
async def remove_blacklist(
    kind: Literal["USER", "DEVICE", "IP"],
    value: Annotated[str, Path(min_length=1, max_length=128)],
    services: Services,
    idem: Idem,
) -> Removed:
    """Lift a blacklist entry."""
    reply = await services.rules.RemoveBlacklistEntry(
        rpb.RemoveBlacklistEntryRequest(
            kind=rpb.BlacklistKind.Value(f"BLACKLIST_KIND_{kind}"), value=value, request_id=idem
        ),
        timeout=services.admin_timeout,
    )
    return Removed(removed=reply.removed)


@router.get("/items", response_model=_typed(mpb.ListItemsResponse))
async def list_items(
    services: Services, page_size: PageSize = PAGE_SIZE, page_token: PageToken = ""
) -> Json:
    """Every catalog item by id, disabled ones and those outside their sale window included."""
    request = mpb.ListItemsRequest(
        include_disabled=True, page_size=page_size, page_token=page_token
    )
    return to_json(await services.mall.ListItems(request, timeout=services.timeout))


@router.get("/lotteries", response_model=_typed(mpb.ListLotteriesResponse))
async def list_lotteries(
    services: Services, page_size: PageSize = PAGE_SIZE, page_token: PageToken = ""
) -> Json:
    """Every lottery as defined, enabled or not, by id."""
    request = mpb.ListLotteriesRequest(page_size=page_size, page_token=page_token)
    return to_json(await services.mall.ListLotteries(request, timeout=services.timeout))


@router.put("/items/{item_id}", response_model=_typed(mpb.Item))
async def put_item(item_id: Name, services: Services, idem: Idem, item: ItemIn) -> Json:
    """Create or replace a catalog item (stock is set with the item)."""
    return await _upsert(
        services.mall.UpsertItem,
        mpb.UpsertItemRequest,
        "item",
        item_id,
        item,
        services.admin_timeout,
        idem,
    )


@router.put("/lotteries/{lottery_id}", response_model=_typed(mpb.UpsertLotteryResponse))
async def put_lottery(lottery_id: Name, services: Services, idem: Idem, lottery: LotteryIn) -> Json:
    """Create or replace a lottery and its prize table."""
    message = _parse(lottery, mpb.Lottery())
    message.lottery_id = lottery_id
    reply = await services.mall.UpsertLottery(
        mpb.UpsertLotteryRequest(lottery=message, request_id=idem), timeout=services.admin_timeout
    )
    return to_json(reply)


@router.post(
    "/lotteries/{lottery_id}/seed-rotations", response_model=_typed(mpb.RotateSeedResponse)
)
async def rotate_seed(lottery_id: Name, services: Services, idem: Idem) -> Json:
    """Reveal the lottery's current seed and start a new one."""
    reply = await services.mall.RotateSeed(
        mpb.RotateSeedRequest(lottery_id=lottery_id, request_id=idem),
        timeout=services.admin_timeout,
    )
    return to_json(reply)


RedemptionStatus = Literal["PENDING", "COMPLETED", "FAILED", "CANCELLED"]


@router.get("/redemptions", response_model=_typed(mpb.ListRedemptionsResponse))
async def list_redemptions(
    services: Services,
    status: RedemptionStatus | None = None,
    page_size: PageSize = PAGE_SIZE,
    page_token: PageToken = "",
) -> Json:
    """Every member's redemptions, newest first, with their saga step and shipment; pass
    `next_page_token` back for older ones."""
    request = mpb.ListRedemptionsRequest(
        all_members=True, page_size=page_size, page_token=page_token
    )
    if status is not None:
        request.status = mpb.RedemptionStatus.Value(f"REDEMPTION_STATUS_{status}")
    return to_json(await services.mall.ListRedemptions(request, timeout=services.timeout))


class Shipment(BaseModel):
    status: Literal["SHIPPED", "DELIVERED"]


@router.post(
    "/users/{user_id}/redemptions/{redemption_id}/shipment",
    response_model=_typed(mpb.Redemption),
)
async def update_shipment(
    user_id: Annotated[str, Path(min_length=1, max_length=128)],
    redemption_id: Annotated[str, Path(pattern=r"^[0-9]{1,18}$")],
    body: Shipment,
    services: Services,
    idem: Idem,
) -> Json:
    """Move a physical redemption's shipment forward."""
    reply = await services.mall.UpdateShipment(
        mpb.UpdateShipmentRequest(
            user_id=user_id,
            redemption_id=redemption_id,
            status=mpb.ShipmentStatus.Value(f"SHIPMENT_STATUS_{body.status}"),
            request_id=idem,
        ),
        timeout=services.admin_timeout,
    )
    services.wallet_parts.forget(user_id)  # a shipment moves no points
    return to_json(reply.redemption)


@router.get("/reports/ledger", response_model=_typed(lpb.GetStatsResponse))
async def ledger_report(
    services: Services,
    start: IsoDatetime | None = None,
    end: IsoDatetime | None = None,
    by_day: Annotated[bool, Query(description="also per day (needs `start`)")] = False,
) -> Json:
    """Outstanding liability, and points issued, spent, expired and reversed in a period
    (per day too with `by_day`, for charts)."""
    request = lpb.GetStatsRequest(by_day=by_day)
    if start is not None:
        request.time_range.start_time.FromDatetime(start)
    if end is not None:
        request.time_range.end_time.FromDatetime(end)
    return to_json(await services.ledger.GetStats(request, timeout=services.timeout * 5))


@router.get("/reports/issuance", response_model=_typed(rpb.GetIssuanceReportResponse))
async def issuance_report(
    services: Services, start: IsoDatetime | None = None, end: IsoDatetime | None = None
) -> Json:
    """Points issued, their cost, purchases and the issuance ratio, by rule and campaign."""
    request = rpb.GetIssuanceReportRequest()
    if start is not None:
        request.time_range.start_time.FromDatetime(start)
    if end is not None:
        request.time_range.end_time.FromDatetime(end)
    return to_json(await services.rules.GetIssuanceReport(request, timeout=services.timeout * 5))


@router.get("/audit-log", response_model=_typed(wpb.ListAuditResponse))
async def audit_log(
    services: Services,
    actor: Annotated[str, Query(max_length=128, description="one operator's entries")] = "",
    text: Annotated[str, Query(max_length=200, description="in the route or bodies")] = "",
    start: IsoDatetime | None = None,
    end: IsoDatetime | None = None,
    page_size: PageSize = PAGE_SIZE,
    page_token: PageToken = "",
) -> Json:
    """The operators' audit log, newest first: who changed what (route, request and answer),
    when and from where. Append-only and hash-chained (`points audit-log verify`)."""
    request = wpb.ListAuditRequest(
        actor=actor, text=text, page_size=page_size, page_token=page_token
    )
    if start is not None:
        request.time_range.start_time.FromDatetime(start)
    if end is not None:
        request.time_range.end_time.FromDatetime(end)
    return to_json(await services.webhooks.ListAudit(request, timeout=services.timeout))


@router.get("/audit", response_model=_typed(lpb.AuditResponse))
async def audit(services: Services) -> Json:
    """Runs the ledger's invariant audit."""
    return to_json(await services.ledger.Audit(lpb.AuditRequest(), timeout=60))
