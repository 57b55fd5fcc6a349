"""Event ingestion for the operator's own backends (scope `events:write`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from gateway.auth import Principal, requires
from gateway.backends import Backends
from gateway.models import EventIn, EventResult
from gateway.routes.common import backends, idempotency_key
from loyalty.common.v1 import common_pb2
from loyalty.rules.v1 import rules_pb2 as rpb

router = APIRouter(prefix="/v1", tags=["events"])


@router.post("/events", response_model=EventResult)
async def record_event(
    event: EventIn,
    key: Annotated[str, Depends(idempotency_key)],
    _: Annotated[Principal, Depends(requires("events:write"))],
    services: Annotated[Backends, Depends(backends)],
) -> EventResult:
    """Report what a user did (purchases, likes, lessons, ...); the Idempotency-Key is the
    event id, so a retried report never awards twice."""
    message = rpb.Event(
        event_id=key,
        user_id=event.user_id,
        type=rpb.EventType.Value(f"EVENT_TYPE_{event.type}"),
        order_id=event.order_id,
        item_id=event.item_id,
        device_id=event.device_id,
        ip=event.ip,
    )
    if event.occurred_at is not None:
        message.occurred_at.FromDatetime(event.occurred_at)
    if event.amount_minor is not None:
        message.amount.CopyFrom(
            common_pb2.Money(amount_minor=event.amount_minor, currency=event.currency or "")
        )
    reply = await services.rules.RecordEvent(
        rpb.RecordEventRequest(event=message), timeout=services.timeout * 3
    )
    return EventResult.of(reply)
