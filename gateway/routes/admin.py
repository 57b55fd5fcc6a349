"""Admin routes (scope `admin`): rules, cap groups, blacklist, ledger reports and audit.

Rules travel as the protobuf JSON of `loyalty.rules.v1.Rule`, so the contract stays in one
place (protos/) for HTTP and gRPC alike.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from google.protobuf import json_format
from pydantic import BaseModel, Field, StrictInt

from gateway.auth import requires
from gateway.backends import Backends
from gateway.errors import HttpError
from gateway.models import IsoDatetime
from gateway.routes.common import backends
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.mall.v1 import mall_pb2 as mpb
from loyalty.rules.v1 import rules_pb2 as rpb

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(requires("admin"))])
Services = Annotated[Backends, Depends(backends)]
Name = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,57}$")]


def _json(message: Any) -> dict[str, Any]:
    found: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return found


@router.get("/rules")
async def list_rules(services: Services) -> dict[str, Any]:
    """Every rule, as protobuf JSON."""
    return _json(await services.rules.ListRules(rpb.ListRulesRequest(), timeout=services.timeout))


@router.put("/rules/{rule_id}")
async def put_rule(
    rule_id: Name, services: Services, rule: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Create or replace a rule (protobuf JSON of loyalty.rules.v1.Rule)."""
    return await _upsert(
        services.rules.UpsertRule,
        rpb.UpsertRuleRequest,
        "rule",
        rpb.Rule(),
        rule_id,
        rule,
        services.timeout,
    )


def _parse(body: dict[str, Any], message: Any, what: str) -> Any:
    try:
        return json_format.ParseDict(body, message)
    except json_format.ParseError as exc:
        raise HttpError(400, "INVALID_ARGUMENT", f"not a valid {what}: {exc}") from None


async def _upsert(
    call: Any,
    request_type: Any,
    field: str,
    message: Any,
    key: str,
    body: dict[str, Any],
    deadline: float,
) -> dict[str, Any]:
    """Parse `body` (protobuf JSON) into `message`, set its id from the path, send it in
    `request_type(field=...)` and answer with what the backend stored."""
    parsed = _parse(body, message, field)
    setattr(parsed, f"{field}_id", key)
    reply = await call(request_type(**{field: parsed}), timeout=deadline)
    return _json(getattr(reply, field))


@router.get("/campaigns")
async def list_campaigns(services: Services) -> dict[str, Any]:
    """Every campaign, as protobuf JSON."""
    return _json(
        await services.rules.ListCampaigns(rpb.ListCampaignsRequest(), timeout=services.timeout)
    )


@router.put("/campaigns/{campaign_id}")
async def put_campaign(
    campaign_id: Name, services: Services, campaign: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Create or replace a campaign (protobuf JSON of loyalty.rules.v1.Campaign)."""
    return await _upsert(
        services.rules.UpsertCampaign,
        rpb.UpsertCampaignRequest,
        "campaign",
        rpb.Campaign(),
        campaign_id,
        campaign,
        services.timeout,
    )


@router.get("/tiers")
async def list_tiers(services: Services) -> dict[str, Any]:
    """Every tier, lowest first."""
    return _json(await services.rules.ListTiers(rpb.ListTiersRequest(), timeout=services.timeout))


@router.put("/tiers/{tier_id}")
async def put_tier(
    tier_id: Name, services: Services, tier: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Create or replace a tier (protobuf JSON of loyalty.rules.v1.Tier)."""
    return await _upsert(
        services.rules.UpsertTier,
        rpb.UpsertTierRequest,
        "tier",
        rpb.Tier(),
        tier_id,
        tier,
        services.timeout,
    )


@router.post("/simulations")
async def simulate(services: Services, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Preview events against current or draft rules (protobuf JSON of
    loyalty.rules.v1.SimulateEventsRequest); changes nothing."""
    request = _parse(body, rpb.SimulateEventsRequest(), "simulation")
    return _json(await services.rules.SimulateEvents(request, timeout=services.timeout * 10))


@router.get("/budgets")
async def list_budgets(services: Services) -> dict[str, Any]:
    """Every budget with its use in the current period."""
    return _json(
        await services.rules.ListBudgets(rpb.ListBudgetsRequest(), timeout=services.timeout)
    )


@router.put("/budgets/{budget_id}")
async def put_budget(
    budget_id: Name, services: Services, budget: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Create or replace a points budget (protobuf JSON of loyalty.rules.v1.Budget)."""
    return await _upsert(
        services.rules.UpsertBudget,
        rpb.UpsertBudgetRequest,
        "budget",
        rpb.Budget(),
        budget_id,
        budget,
        services.timeout,
    )


@router.get("/reviews")
async def list_reviews(
    services: Services,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
    page_token: Annotated[str, Query(max_length=500)] = "",
) -> dict[str, Any]:
    """Events whose points wait for an operator, oldest first."""
    return _json(
        await services.rules.ListReviews(
            rpb.ListReviewsRequest(page_size=page_size, page_token=page_token),
            timeout=services.timeout,
        )
    )


@router.post("/reviews/{user_id}/{event_id}/{decision}")
async def decide_review(
    user_id: Annotated[str, Path(min_length=1, max_length=128)],
    event_id: Annotated[str, Path(min_length=1, max_length=256)],
    decision: Literal["approve", "reject"],
    services: Services,
) -> dict[str, Any]:
    """Approve (credit) or reject (never credit) a reviewed event's points."""
    if decision == "approve":
        reply: Any = await services.rules.ApproveReview(
            rpb.ApproveReviewRequest(user_id=user_id, event_id=event_id),
            timeout=services.timeout * 3,
        )
    else:
        reply = await services.rules.RejectReview(
            rpb.RejectReviewRequest(user_id=user_id, event_id=event_id), timeout=services.timeout
        )
    return {"decision": decision, "points": reply.points}


class CapGroup(BaseModel):
    daily_cap: StrictInt = Field(gt=0, le=10**9)


@router.put("/cap-groups/{name}")
async def put_cap_group(name: Name, body: CapGroup, services: Services) -> dict[str, Any]:
    """Create or replace a cap group's daily cap."""
    reply = await services.rules.UpsertCapGroup(
        rpb.UpsertCapGroupRequest(name=name, daily_cap=body.daily_cap), timeout=services.timeout
    )
    return _json(reply)


class BlacklistEntry(BaseModel):
    kind: Literal["USER", "DEVICE", "IP"]
    value: str = Field(min_length=1, max_length=128)
    reason: str = Field(default="", max_length=500)
    expires_at: IsoDatetime | None = None


@router.post("/blacklist", status_code=204)
async def add_blacklist(entry: BlacklistEntry, services: Services) -> None:
    """Blacklist a user, device or IP (until `expires_at`, or for good)."""
    request = rpb.AddBlacklistEntryRequest(
        kind=rpb.BlacklistKind.Value(f"BLACKLIST_KIND_{entry.kind}"),
        value=entry.value,
        reason=entry.reason,
    )
    if entry.expires_at is not None:
        request.expire_time.FromDatetime(entry.expires_at)
    await services.rules.AddBlacklistEntry(request, timeout=services.timeout)


@router.get("/blacklist")
async def list_blacklist(services: Services) -> dict[str, Any]:
    """Every blacklist entry in force."""
    return _json(
        await services.rules.ListBlacklist(rpb.ListBlacklistRequest(), timeout=services.timeout)
    )


@router.delete("/blacklist/{kind}/{value}")
async def remove_blacklist(
    kind: Literal["USER", "DEVICE", "IP"],
    value: Annotated[str, Path(min_length=1, max_length=128)],
    services: Services,
) -> dict[str, bool]:
    """Lift a blacklist entry."""
    reply = await services.rules.RemoveBlacklistEntry(
        rpb.RemoveBlacklistEntryRequest(
            kind=rpb.BlacklistKind.Value(f"BLACKLIST_KIND_{kind}"), value=value
        ),
        timeout=services.timeout,
    )
    return {"removed": reply.removed}


@router.put("/items/{item_id}")
async def put_item(
    item_id: Name, services: Services, item: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Create or replace a catalog item (protobuf JSON of loyalty.mall.v1.Item)."""
    return await _upsert(
        services.mall.UpsertItem,
        mpb.UpsertItemRequest,
        "item",
        mpb.Item(),
        item_id,
        item,
        services.timeout,
    )


@router.put("/lotteries/{lottery_id}")
async def put_lottery(
    lottery_id: Name, services: Services, lottery: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Create or replace a lottery (protobuf JSON of loyalty.mall.v1.Lottery)."""
    try:
        message = json_format.ParseDict(lottery, mpb.Lottery())
    except json_format.ParseError as exc:
        raise HttpError(400, "INVALID_ARGUMENT", f"not a valid lottery: {exc}") from None
    message.lottery_id = lottery_id
    reply = await services.mall.UpsertLottery(
        mpb.UpsertLotteryRequest(lottery=message), timeout=services.timeout
    )
    return _json(reply)


@router.post("/lotteries/{lottery_id}/seed-rotations")
async def rotate_seed(lottery_id: Name, services: Services) -> dict[str, Any]:
    """Reveal the lottery's current seed and start a new one."""
    reply = await services.mall.RotateSeed(
        mpb.RotateSeedRequest(lottery_id=lottery_id), timeout=services.timeout
    )
    return _json(reply)


class Shipment(BaseModel):
    status: Literal["SHIPPED", "DELIVERED"]


@router.post("/users/{user_id}/redemptions/{redemption_id}/shipment")
async def update_shipment(
    user_id: Annotated[str, Path(min_length=1, max_length=128)],
    redemption_id: Annotated[str, Path(pattern=r"^[0-9]{1,18}$")],
    body: Shipment,
    services: Services,
) -> dict[str, Any]:
    """Move a physical redemption's shipment forward."""
    reply = await services.mall.UpdateShipment(
        mpb.UpdateShipmentRequest(
            user_id=user_id,
            redemption_id=redemption_id,
            status=mpb.ShipmentStatus.Value(f"SHIPMENT_STATUS_{body.status}"),
        ),
        timeout=services.timeout,
    )
    return _json(reply.redemption)


@router.get("/reports/ledger")
async def ledger_report(
    services: Services, start: IsoDatetime | None = None, end: IsoDatetime | None = None
) -> dict[str, Any]:
    """Outstanding liability, and points issued, spent, expired and reversed in a period."""
    request = lpb.GetStatsRequest()
    if start is not None:
        request.time_range.start_time.FromDatetime(start)
    if end is not None:
        request.time_range.end_time.FromDatetime(end)
    return _json(await services.ledger.GetStats(request, timeout=services.timeout * 5))


@router.get("/reports/issuance")
async def issuance_report(
    services: Services, start: IsoDatetime | None = None, end: IsoDatetime | None = None
) -> dict[str, Any]:
    """Points issued, their cost, purchases and the issuance ratio, by rule and campaign."""
    request = rpb.GetIssuanceReportRequest()
    if start is not None:
        request.time_range.start_time.FromDatetime(start)
    if end is not None:
        request.time_range.end_time.FromDatetime(end)
    return _json(await services.rules.GetIssuanceReport(request, timeout=services.timeout * 5))


@router.get("/audit")
async def audit(services: Services) -> dict[str, Any]:
    """Runs the ledger's invariant audit."""
    return _json(await services.ledger.Audit(lpb.AuditRequest(), timeout=60))
