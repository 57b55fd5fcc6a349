"""Event ingestion for the operator's own backends (scope `events:write`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from gateway.auth import Principal, requires
from gateway.backends import Backends
from gateway.errors import problem_of_status
from gateway.models import EventIn, EventResult, Problem
from gateway.routes.common import backends, idempotency_key
from loyalty.common.v1 import common_pb2
from loyalty.rules.v1 import rules_pb2 as rpb

router = APIRouter(prefix="/v1", tags=["events"])


def _message(event_id: str, event: EventIn) -> rpb.Event:
    message = rpb.Event(
        event_id=event_id,
        user_id=event.user_id,
        type=rpb.EventType.Value(f"EVENT_TYPE_{event.type}"),
        order_id=event.order_id,
        item_id=event.item_id,
        device_id=event.device_id,
        ip=event.ip,
        minutes=event.minutes,
        referrer_id=event.referrer_id,
    )
    if event.occurred_at is not None:
        message.occurred_at.FromDatetime(event.occurred_at)
    if event.amount_minor is not None:
        message.amount.CopyFrom(
            common_pb2.Money(amount_minor=event.amount_minor, currency=event.currency or "")
        )
    return message


class BatchEventIn(EventIn):
    event_id: str = Field(min_length=1, max_length=256)


class BatchIn(BaseModel):
    events: list[BatchEventIn] = Field(min_length=1, max_length=500)


class BatchResultOut(BaseModel):
    result: EventResult | None
    error: Problem | None


@router.post("/events/batch", response_model=list[BatchResultOut])
async def record_events(
    body: BatchIn,
    _: Annotated[Principal, Depends(requires("events:write"))],
    services: Annotated[Backends, Depends(backends)],
) -> list[BatchResultOut]:
    """Many events at once, each idempotent on its own event_id; one result per event."""
    reply = await services.rules.RecordEvents(
        rpb.RecordEventsRequest(events=[_message(e.event_id, e) for e in body.events]),
        timeout=services.timeout * 10,
    )
    services.wallet_parts.forget(*(e.user_id for e in body.events))
    out = []
    for result in reply.results:
        if result.WhichOneof("result") == "response":
            out.append(BatchResultOut(result=EventResult.of(result.response), error=None))
        else:
            error = result.error
            found = problem_of_status(error.code, error.reason, error.message, dict(error.metadata))
            out.append(BatchResultOut(result=None, error=Problem(**found)))
    return out


@router.post("/events", response_model=EventResult)
async def record_event(
    event: EventIn,
    key: Annotated[str, Depends(idempotency_key)],
    _: Annotated[Principal, Depends(requires("events:write"))],
    services: Annotated[Backends, Depends(backends)],
) -> EventResult:
    """Report what a user did (purchases, likes, lessons, ...); the Idempotency-Key is the
    event id, so a retried report never awards twice."""
    message = _message(key, event)
    reply = await services.rules.RecordEvent(
        rpb.RecordEventRequest(event=message), timeout=services.timeout * 3
    )
    services.wallet_parts.forget(message.user_id)
    return EventResult.of(reply)
