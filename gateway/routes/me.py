"""The signed-in user's own wallet: balance, history, live updates, check-in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, Any, TypeVar

import grpc
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from gateway.auth import Principal, requires
from gateway.backends import Backends
from gateway.dialect import model_for, short_name, short_names, to_json
from gateway.errors import HttpError
from gateway.models import (
    CapLeft,
    CheckInStatus,
    EventResult,
    Expiring,
    History,
    Points,
    Redemption,
    TierStatus,
    Transfer,
    Wallet,
)
from gateway.routes.common import PAGE_SIZE, PageSize, PageToken, backends, client, idempotency_key
from gateway.wallet_parts import UNORDERED, Stamp, WalletParts, stamp_of
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.mall.v1 import mall_pb2 as mpb
from loyalty.rules.v1 import rules_pb2 as rpb

router = APIRouter(prefix="/v1/me", tags=["me"])
Me = Annotated[Principal, Depends(requires())]
Services = Annotated[Backends, Depends(backends)]
EXPIRING_WINDOW_DAYS = 30
T = TypeVar("T")


# The signed-in user's routes below, and the operators' views of a member (routes/members.py),
# answer from the same functions: a member's wallet, history and events look the same to both.
Kinds = Annotated[list[str] | None, Query()]


@router.get("/wallet", response_model=Wallet)
async def wallet(me: Me, services: Services) -> Wallet:
    """Everything the wallet screen shows, fetched from the backends concurrently. A backend
    that fails or is slow leaves its part empty and named in `degraded`, never a 5xx."""
    return await wallet_of(me.user_id, services)


async def wallet_of(user_id: str, services: Backends) -> Wallet:
    """One ledger call when the member's other parts are kept and still current (see
    gateway/wallet_parts.py); else all four backends, concurrently for a member not seen yet."""
    kept = services.wallet_parts
    ledger = services.ledger.GetBalance(
        lpb.GetBalanceRequest(
            user_id=user_id, expiring_within_days=EXPIRING_WINDOW_DAYS, recent_transfers=10
        ),
        timeout=services.timeout,
    )
    if not kept.known(user_id):
        found = await asyncio.gather(
            ledger, *_other_parts(user_id, services), return_exceptions=True
        )
        return _keep(kept, user_id, UNORDERED, *found)
    balance = await _outcome(ledger)
    stamp = UNORDERED
    if not isinstance(balance, BaseException):
        stamp = stamp_of(balance.balance.changed_time)
        parts = kept.get(user_id, stamp)
        if parts is not None:
            return _wallet(user_id, balance, parts.status, parts.redemptions)
    others = await asyncio.gather(*_other_parts(user_id, services), return_exceptions=True)
    return _keep(kept, user_id, stamp, balance, *others)


def _keep(kept: WalletParts, user_id: str, stamp: Stamp, *found: Any) -> Wallet:
    """The wallet of what the backends answered; the rules' and mall's parts kept."""
    balance, status, redemptions = found
    for part in found:
        if isinstance(part, BaseException) and not isinstance(part, grpc.aio.AioRpcError):
            raise part  # a bug, not a backend outage
    if not isinstance(status, BaseException) and not isinstance(redemptions, BaseException):
        kept.put(user_id, stamp, status, redemptions)
    return _wallet(user_id, balance, status, redemptions)


def _other_parts(user_id: str, services: Backends) -> tuple[Awaitable[Any], Awaitable[Any]]:
    return (
        services.rules.GetMemberStatus(
            rpb.GetMemberStatusRequest(user_id=user_id), timeout=services.timeout
        ),
        services.mall.ListRedemptions(
            mpb.ListRedemptionsRequest(user_id=user_id, page_size=5), timeout=services.timeout
        ),
    )


async def _outcome(call: Awaitable[T]) -> T | BaseException:
    """The call's answer, or its failure as a value (as asyncio.gather(return_exceptions))."""
    try:
        return await call
    except Exception as exc:
        return exc


def _wallet(
    user_id: str,
    balance: lpb.GetBalanceResponse | BaseException,
    status: rpb.GetMemberStatusResponse | BaseException,
    redemptions: mpb.ListRedemptionsResponse | BaseException,
) -> Wallet:
    parts = {
        "points": balance,
        "recent": balance,
        "check_in": status,
        "redemptions": redemptions,
        "tier": status,
        "caps_today": status,
    }
    return Wallet(
        user_id=user_id,
        points=None if isinstance(balance, BaseException) else Points.of(balance.balance),
        expiring=[]
        if isinstance(balance, BaseException)
        else [Expiring(date=e.date, amount=e.amount) for e in balance.balance.expiring],
        check_in=None
        if isinstance(status, BaseException)
        else CheckInStatus(
            streak=status.check_in.streak,
            checked_in_today=status.check_in.checked_in_today,
            next_points=status.check_in.next_points,
            today=status.check_in.today,
        ),
        tier=None if isinstance(status, BaseException) else TierStatus.of(status.tier),
        caps_today=[]
        if isinstance(status, BaseException)
        else [
            CapLeft(
                rule_id=c.rule_id,
                event_type=short_name(rpb.EventType, c.event_type),
                earned_today=c.earned_today,
                daily_cap=c.daily_cap,
                remaining_today=c.remaining_today,
            )
            for c in status.caps
        ],
        recent=[]
        if isinstance(balance, BaseException)
        else [Transfer.of(t) for t in balance.recent],
        redemptions=[]
        if isinstance(redemptions, BaseException)
        else [Redemption.of(r) for r in redemptions.redemptions],
        degraded=[name for name, part in parts.items() if isinstance(part, BaseException)],
    )


KINDS = short_names(lpb.TransferKind.DESCRIPTOR)[1:]  # UNSPECIFIED is not a filter


@router.get("/history", response_model=History)
async def history(
    me: Me,
    services: Services,
    page_size: PageSize = PAGE_SIZE,
    page_token: PageToken = "",
    kind: Kinds = None,
) -> History:
    """The user's point changes, newest first; pass `next_page_token` back for more."""
    return await history_of(me.user_id, services, page_size, page_token, kind)


async def history_of(
    user_id: str, services: Backends, page_size: int, page_token: str, kind: list[str] | None
) -> History:
    unknown = [k for k in kind or [] if k not in KINDS]
    if unknown:
        raise HttpError(
            400,
            "INVALID_ARGUMENT",
            f"unknown kind(s): {', '.join(unknown)}",
            {"allowed": ", ".join(KINDS)},
        )
    reply = await services.ledger.ListTransfers(
        lpb.ListTransfersRequest(
            user_id=user_id,
            page_size=page_size,
            page_token=page_token,
            kinds=[lpb.TransferKind.Value(f"TRANSFER_KIND_{k}") for k in kind or []],
        ),
        timeout=services.timeout,
    )
    return History(
        transfers=[Transfer.of(t) for t in reply.transfers], next_page_token=reply.next_page_token
    )


def _points_json(balance: lpb.Balance) -> dict[str, Any]:
    return Points.of(balance).model_dump()


@router.get(
    "/wallet/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def wallet_stream(me: Me, services: Services, request: Request) -> StreamingResponse:
    """Server-Sent Events: a `balance` event now and after every change to the user's points,
    and a comment line every `SSE_KEEPALIVE_SECONDS` so proxies keep an idle stream open."""
    call = services.ledger.WatchBalance(lpb.WatchBalanceRequest(user_id=me.user_id))
    keepalive: float = request.app.state.sse_keepalive_seconds

    async def events() -> AsyncIterator[str]:
        next_message = asyncio.ensure_future(call.read())
        try:
            while True:
                done, _ = await asyncio.wait({next_message}, timeout=keepalive)
                if await request.is_disconnected():
                    break
                if not done:
                    yield ": keepalive\n\n"
                    continue
                message = next_message.result()
                if not isinstance(message, lpb.WatchBalanceResponse):
                    break  # grpc.aio.EOF: the ledger ended the stream
                yield f"event: balance\ndata: {json.dumps(_points_json(message.balance))}\n\n"
                next_message = asyncio.ensure_future(call.read())
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                yield f"event: error\ndata: {json.dumps({'status': exc.code().name})}\n\n"
        finally:
            next_message.cancel()
            call.cancel()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/check-in", response_model=EventResult)
async def check_in(
    me: Me,
    services: Services,
    request: Request,
    key: Annotated[str, Depends(idempotency_key)],
) -> EventResult:
    """Today's check-in. Repeating it (same Idempotency-Key) returns the same result."""
    event = rpb.Event(
        event_id=key,
        user_id=me.user_id,
        type=rpb.EVENT_TYPE_CHECK_IN,
        device_id=client(request).device_id,
        ip=client(request).ip,
    )
    reply = await services.rules.RecordEvent(
        rpb.RecordEventRequest(event=event), timeout=services.timeout * 3
    )
    services.wallet_parts.forget(me.user_id)  # a check-in may move the streak, not the points
    return EventResult.of(reply)


@router.get("/events", response_model=model_for(rpb.ListUserEventsResponse.DESCRIPTOR))
async def my_events(
    me: Me, services: Services, page_size: PageSize = PAGE_SIZE, page_token: PageToken = ""
) -> dict[str, Any]:
    """The user's recorded events and what each earned, with the reasons: why points came, or
    did not (caps, risk decisions, already done)."""
    return await events_of(me.user_id, services, page_size, page_token)


async def events_of(
    user_id: str, services: Backends, page_size: int, page_token: str
) -> dict[str, Any]:
    reply = await services.rules.ListUserEvents(
        rpb.ListUserEventsRequest(user_id=user_id, page_size=page_size, page_token=page_token),
        timeout=services.timeout,
    )
    return to_json(reply)
