"""Operators and members' points (scope `admin`): segments, a member's points and what expires
when, adjustments with a reason (kept on the ledger transfer), and expiry runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field, StrictInt, field_validator

from gateway import approvals
from gateway.backends import Backends
from gateway.dialect import IsoDatetime, model_for
from gateway.models import Expiring, History, Points, Wallet
from gateway.routes.common import (
    EXPORT_PAGE_SIZE,
    PAGE_SIZE,
    WAITS,
    ExportPageSize,
    Operator,
    PageSize,
    PageToken,
    backends,
    idempotency_key,
)
from gateway.routes.me import (
    Kinds,
    events_of,
    history_of,
    wallet_of,
)
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.rules.v1 import rules_pb2 as rpb
from services.common.validation import MAX_POINTS

router = APIRouter(prefix="/v1/admin", tags=["admin"])
Services = Annotated[Backends, Depends(backends)]
Key = Annotated[str, Depends(idempotency_key)]
UserId = Annotated[str, Path(min_length=1, max_length=128)]


class MemberPoints(Points):
    user_id: str
    changed_at: datetime | None = Field(description="when the member's points last moved")


class Segment(BaseModel):
    members: list[MemberPoints]
    next_page_token: str


class MemberDetail(BaseModel):
    user_id: str
    points: Points
    expiring: list[Expiring] = Field(description="points expiring per day, soonest first")


class AdjustmentIn(BaseModel):
    points: StrictInt = Field(
        ge=-MAX_POINTS, le=MAX_POINTS, description="> 0 credits, < 0 debits (never 0)"
    )
    note: str = Field(min_length=1, max_length=500, description="why: kept on the transfer")

    @field_validator("points")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must not be 0: > 0 credits, < 0 debits")
        return value


class Adjustment(BaseModel):
    transfer_id: str
    points: int
    operator: str
    note: str
    balance: Points


class ExpiryRunIn(BaseModel):
    as_of: IsoDatetime | None = Field(default=None, description="default: now")


class ExpiryRun(BaseModel):
    lots_expired: int
    points_expired: int
    members_affected: int


@router.get("/segments", response_model=Segment)
async def segment(
    _: Operator,
    services: Services,
    min_available: Annotated[int, Query(ge=0, le=MAX_POINTS)] = 0,
    prefix: Annotated[str, Query(max_length=128, description="ids starting with this")] = "",
    inactive_since: Annotated[
        IsoDatetime | None, Query(description="points last moved before this")
    ] = None,
    page_size: ExportPageSize = EXPORT_PAGE_SIZE,
    page_token: PageToken = "",
) -> Segment:
    """Members whose available points are at least `min_available`, optionally by id prefix and
    inactivity, by id, paged (export by following `next_page_token` to the end; a page may be
    short, even empty, while more follow)."""
    request = lpb.ListMembersRequest(
        min_available=min_available,
        user_id_prefix=prefix,
        page_size=page_size,
        page_token=page_token,
    )
    if inactive_since is not None:
        request.changed_before.FromDatetime(inactive_since)
    reply = await services.ledger.ListMembers(request, timeout=services.timeout * 5)
    return Segment(
        members=[
            MemberPoints(
                user_id=m.user_id,
                changed_at=m.changed_time.ToDatetime(UTC) if m.HasField("changed_time") else None,
                **Points.of(m).model_dump(),
            )
            for m in reply.members
        ],
        next_page_token=reply.next_page_token,
    )


@router.get("/members/{user_id}", response_model=MemberDetail)
async def member(
    user_id: UserId,
    _: Operator,
    services: Services,
    expiring_within_days: Annotated[int, Query(ge=0, le=3660)] = 30,
) -> MemberDetail:
    """A member's points, and what expires in the coming days."""
    reply = await services.ledger.GetBalance(
        lpb.GetBalanceRequest(user_id=user_id, expiring_within_days=expiring_within_days),
        timeout=services.timeout,
    )
    return MemberDetail(
        user_id=user_id,
        points=Points.of(reply.balance),
        expiring=[Expiring(date=e.date, amount=e.amount) for e in reply.balance.expiring],
    )


@router.get("/members/{user_id}/wallet", response_model=Wallet)
async def member_wallet(user_id: UserId, _: Operator, services: Services) -> Wallet:
    """The member's wallet as they see it: points, expiring, tier, check-in, caps left today,
    recent history and redemptions."""
    return await wallet_of(user_id, services)


@router.get("/members/{user_id}/history", response_model=History)
async def member_history(
    user_id: UserId,
    _: Operator,
    services: Services,
    page_size: PageSize = PAGE_SIZE,
    page_token: PageToken = "",
    kind: Kinds = None,
) -> History:
    """The member's point changes, newest first, each with its reason and metadata."""
    return await history_of(user_id, services, page_size, page_token, kind)


@router.get(
    "/members/{user_id}/events", response_model=model_for(rpb.ListUserEventsResponse.DESCRIPTOR)
)
async def member_events(
    user_id: UserId,
    _: Operator,
    services: Services,
    page_size: PageSize = PAGE_SIZE,
    page_token: PageToken = "",
) -> dict[str, Any]:
    """The member's events and what each earned, with the reasons, and where reviews stand."""
    return await events_of(user_id, services, page_size, page_token)


@router.post(
    "/members/{user_id}/adjustments",
    response_model=Adjustment,
    responses=WAITS,
)
async def adjust(
    user_id: UserId,
    body: AdjustmentIn,
    operator: Operator,
    key: Key,
    services: Services,
    request: Request,
) -> Adjustment:
    """Credit (points > 0) or debit (points < 0) a member by hand, with a reason. The transfer
    (kind ADJUSTMENT) names the operator and the note, in the member's history too. Above
    GATEWAY_ADJUSTMENT_LIMIT points it waits for a second person (finance or admin): 202 with
    the approval."""
    limit = request.app.state.authenticator.settings.adjustment_limit
    if abs(body.points) > limit:
        reason = f"an adjustment of more than {limit} points"
        detail = {"member": user_id, "points": body.points, "limit": limit}
        if (pending := await approvals.ask(request, operator, reason, detail)) is not None:
            return pending  # type: ignore[return-value]
    metadata = {"operator": operator.user_id, "note": body.note}
    if body.points > 0:
        credited = await services.ledger.Credit(
            lpb.CreditRequest(
                request_id=key,
                user_id=user_id,
                amount=body.points,
                source="adjustment",
                reason_code="OPERATOR_ADJUSTMENT",
                kind=lpb.TRANSFER_KIND_ADJUSTMENT,
                metadata=metadata,
            ),
            timeout=services.admin_timeout,
        )
        transfer, balance = credited.transfer, credited.balance
    else:
        debited = await services.ledger.Debit(
            lpb.DebitRequest(
                request_id=key,
                user_id=user_id,
                amount=-body.points,
                reason_code="OPERATOR_ADJUSTMENT",
                kind=lpb.TRANSFER_KIND_ADJUSTMENT,
                metadata=metadata,
            ),
            timeout=services.admin_timeout,
        )
        transfer, balance = debited.transfer, debited.balance
    return Adjustment(
        transfer_id=transfer.transfer_id,
        points=body.points,
        operator=operator.user_id,
        note=body.note,
        balance=Points.of(balance),
    )


@router.post("/expiry-runs", response_model=ExpiryRun)
async def run_expiry(body: ExpiryRunIn, _: Operator, key: Key, services: Services) -> ExpiryRun:
    """Expire every lot due by `as_of` now (the ledger also does this on a schedule,
    LEDGER_EXPIRY_SWEEP_SECONDS). The same Idempotency-Key answers the same run."""
    request = lpb.ExpirePointsRequest(request_id=key)
    if body.as_of is not None:
        request.as_of_time.FromDatetime(body.as_of)
    reply = await services.ledger.ExpirePoints(request, timeout=services.timeout * 60)
    return ExpiryRun(
        lots_expired=reply.lots_expired,
        points_expired=reply.points_expired,
        members_affected=reply.members_affected,
    )
