"""The JSON the gateway speaks (these models also make its OpenAPI document)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictInt

from gateway.dialect import IsoDatetime, enumerated, short_name
from gateway.errors import REASONS
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.mall.v1 import mall_pb2 as mpb
from loyalty.rules.v1 import rules_pb2 as rpb

# A problem's reason: one of the enumerated reasons (a string in Python, an enum in the OpenAPI).
Reason = Annotated[str, Field(json_schema_extra={"enum": list(REASONS)})]


class Points(BaseModel):
    available: int
    pending: int
    held: int
    lifetime_earned: int
    lifetime_spent: int
    lifetime_expired: int
    lifetime_reversed: int

    @classmethod
    def of(cls, balance: lpb.Balance) -> Points:
        return cls(
            available=balance.available,
            pending=balance.pending,
            held=balance.held,
            lifetime_earned=balance.lifetime_earned,
            lifetime_spent=balance.lifetime_spent,
            lifetime_expired=balance.lifetime_expired,
            lifetime_reversed=balance.lifetime_reversed,
        )


class Expiring(BaseModel):
    date: str
    amount: int


class CheckInStatus(BaseModel):
    streak: int
    checked_in_today: bool
    next_points: int
    today: str


class Transfer(BaseModel):
    transfer_id: str
    kind: Annotated[str, enumerated(lpb.TransferKind)]
    amount: int = Field(description="points; positive for credits to the user, negative for debits")
    reason_code: str
    created_at: datetime | None
    expires_at: datetime | None = Field(description="credits: when these points expire")
    matures_at: datetime | None = Field(description="pending credits: when they can be spent")
    metadata: dict[str, str]

    @classmethod
    def of(cls, transfer: lpb.Transfer) -> Transfer:
        sign = 1 if transfer.credit_account == "member" else -1

        return cls(
            expires_at=(
                transfer.expire_time.ToDatetime(tzinfo=UTC)
                if transfer.HasField("expire_time")
                else None
            ),
            matures_at=(
                transfer.mature_time.ToDatetime(tzinfo=UTC)
                if transfer.HasField("mature_time")
                else None
            ),
            transfer_id=transfer.transfer_id,
            kind=short_name(lpb.TransferKind, transfer.kind),
            amount=sign * transfer.amount,
            reason_code=transfer.reason_code,
            created_at=transfer.create_time.ToDatetime(tzinfo=UTC)
            if transfer.HasField("create_time")
            else None,
            metadata=dict(transfer.metadata),
        )


class Item(BaseModel):
    item_id: str
    type: Annotated[str, enumerated(mpb.ItemType)]
    title: str
    description: str
    image_url: str
    points_price: int
    cash_price_minor: int
    stock: int | None = Field(description="units left; null when unlimited")
    per_user_limit: int

    @classmethod
    def of(cls, item: mpb.Item) -> Item:
        return cls(
            item_id=item.item_id,
            type=short_name(mpb.ItemType, item.type),
            title=item.title,
            description=item.description,
            image_url=item.image_url,
            points_price=item.points_price,
            cash_price_minor=item.cash_price.amount_minor,
            stock=None if item.unlimited_stock else item.stock,
            per_user_limit=item.per_user_limit,
        )


class Catalog(BaseModel):
    items: list[Item]
    next_page_token: str


class Redemption(BaseModel):
    redemption_id: str
    item_id: str
    quantity: int
    points: int
    status: Annotated[str, enumerated(mpb.RedemptionStatus)]
    failure_reason: str
    code: str
    shipment_status: Annotated[str, enumerated(mpb.ShipmentStatus)]
    cash_due_minor: int
    created_at: datetime | None

    @classmethod
    def of(cls, redemption: mpb.Redemption) -> Redemption:
        return cls(
            redemption_id=redemption.redemption_id,
            item_id=redemption.item_id,
            quantity=redemption.quantity,
            points=redemption.points,
            status=short_name(mpb.RedemptionStatus, redemption.status),
            failure_reason=redemption.failure_reason,
            code=redemption.code,
            shipment_status=short_name(mpb.ShipmentStatus, redemption.shipment_status),
            cash_due_minor=redemption.cash_due.amount_minor,
            created_at=redemption.create_time.ToDatetime(tzinfo=UTC)
            if redemption.HasField("create_time")
            else None,
        )


class Redemptions(BaseModel):
    redemptions: list[Redemption]
    next_page_token: str


class RedeemIn(BaseModel):
    item_id: str = Field(min_length=1, max_length=64)
    quantity: StrictInt = Field(default=1, ge=1, le=100)
    shipping_address: str = Field(default="", max_length=500)


class TierStatus(BaseModel):
    tier_id: str
    name: str
    multiplier_percent: int
    points_12m: int
    next_tier_id: str | None
    points_to_next: int

    @classmethod
    def of(cls, reply: rpb.GetUserTierResponse) -> TierStatus | None:
        if not reply.HasField("tier"):
            return None  # no tiers configured
        return cls(
            tier_id=reply.tier.tier_id,
            name=reply.tier.name,
            multiplier_percent=reply.tier.multiplier_percent,
            points_12m=reply.points_12m,
            next_tier_id=reply.next_tier.tier_id if reply.HasField("next_tier") else None,
            points_to_next=reply.points_to_next,
        )


class CapLeft(BaseModel):
    rule_id: str
    event_type: Annotated[str, enumerated(rpb.EventType)]
    earned_today: int
    daily_cap: int
    remaining_today: int


class Wallet(BaseModel):
    user_id: str
    points: Points | None
    expiring: list[Expiring]
    check_in: CheckInStatus | None
    tier: TierStatus | None
    caps_today: list[CapLeft]
    recent: list[Transfer]
    redemptions: list[Redemption]
    degraded: list[str] = Field(description="parts that could not be fetched just now")


class History(BaseModel):
    transfers: list[Transfer]
    next_page_token: str


class Award(BaseModel):
    rule_id: str
    points: int
    base_points: int
    capped_by: str
    reason: str
    pending: bool
    matures_at: datetime | None = Field(description="when pending points become spendable")
    streak_day: int
    rule_version: int
    campaign_points: int = Field(description="of `points`, added by the tier and campaigns")
    campaign_ids: list[str]
    campaign_shares: list[int] = Field(
        description="what each of `campaign_ids` added, same order (they add up)"
    )
    tier_points: int = Field(description="of `campaign_points`, added by the tier multiplier")
    in_review: bool = Field(description="waits for an operator (decision REVIEW)")
    beneficiary_user_id: str = Field(description="who gets the points (the referrer, invites)")
    experiment_id: str = Field(
        description="the experiment whose arm decided the award (its rule or a campaign is "
        "under test); empty when none did"
    )
    arm_id: str = Field(description="the member's arm of `experiment_id`")

    @classmethod
    def of(cls, award: rpb.Award) -> Award:
        return cls(
            rule_id=award.rule_id,
            points=award.points,
            base_points=award.base_points,
            capped_by=award.capped_by,
            reason=award.reason,
            pending=award.pending,
            matures_at=(
                award.mature_time.ToDatetime(tzinfo=UTC) if award.HasField("mature_time") else None
            ),
            streak_day=award.streak_day,
            rule_version=award.rule_version,
            campaign_points=award.campaign_points,
            campaign_ids=list(award.campaign_ids),
            campaign_shares=list(award.campaign_shares),
            tier_points=award.tier_points,
            in_review=award.in_review,
            beneficiary_user_id=award.beneficiary_user_id,
            experiment_id=award.experiment_id,
            arm_id=award.arm_id,
        )


class EventResult(BaseModel):
    event_id: str
    decision: Annotated[str, enumerated(rpb.Decision)]
    risk_reasons: list[str]
    total_points: int
    reversed_points: int
    awards: list[Award]
    referral: str = Field(description="what became of the event's referrer_id (invitations)")
    new_tier_id: str = Field(description="the tier the user moved to, if the event moved them")
    arms: dict[str, str] = Field(
        description="the member's arm of each running experiment they take part in, by "
        "experiment id (an app may show the arm's variant)"
    )

    @classmethod
    def of(cls, response: rpb.RecordEventResponse) -> EventResult:
        return cls(
            event_id=response.event_id,
            decision=short_name(rpb.Decision, response.decision),
            risk_reasons=list(response.risk_reasons),
            total_points=response.total_points,
            reversed_points=response.reversed_points,
            awards=[Award.of(a) for a in response.awards],
            referral=response.referral,
            new_tier_id=response.new_tier_id,
            arms={a.experiment_id: a.arm_id for a in response.assignments},
        )


EventType = Literal[
    "CHECK_IN",
    "LIKE",
    "SHARE",
    "COMMENT",
    "FORWARD",
    "PURCHASE",
    "REFUND",
    "REGISTER",
    "PROFILE_COMPLETED",
    "LESSON_COMPLETED",
    "TASK_COMPLETED",
    "ONLINE_TIME",
]


class EventIn(BaseModel):
    """An event reported by the operator's own backend (the event id is the Idempotency-Key)."""

    user_id: str = Field(min_length=1, max_length=128)
    type: EventType
    occurred_at: IsoDatetime | None = None
    amount_minor: StrictInt | None = Field(default=None, ge=0, le=10**15)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    order_id: str = Field(default="", max_length=128)
    item_id: str = Field(default="", max_length=128)
    device_id: str = Field(default="", max_length=128)
    ip: str = Field(default="", max_length=128)
    minutes: StrictInt = Field(default=0, ge=0, le=24 * 60, description="for ONLINE_TIME")
    referrer_id: str = Field(
        default="", max_length=128, description="who invited this user (invitation rules)"
    )


class Readiness(BaseModel):
    status: Literal["ready"]
    backends: dict[str, str] = Field(description="each backend's gRPC health status")
    degraded: list[str] = Field(description="backends not SERVING now")


class Violation(BaseModel):
    field: str
    description: str


class Problem(BaseModel):
    """An error (RFC 9457 problem details, `application/problem+json`)."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "type": "urn:points:problem:insufficient-points",
                    "title": "Unprocessable content",
                    "status": 422,
                    "detail": "not enough points",
                    "reason": "INSUFFICIENT_POINTS",
                    "violations": [],
                    "metadata": {"available": "120"},
                }
            ]
        }
    }

    type: str = Field(description="urn:points:problem:<reason in kebab case>")
    title: str = Field(description="the HTTP status, in words")
    status: int = Field(description="the HTTP status code")
    detail: str = Field(description="what went wrong, for people (not for parsing)")
    reason: Reason = Field(description="stable machine-readable reason (see the README's table)")
    violations: list[Violation] = Field(description="each invalid field (400)")
    metadata: dict[str, str] = Field(description="context, e.g. {'available': '120'}")
