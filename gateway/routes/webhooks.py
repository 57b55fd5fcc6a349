"""Admin routes for webhooks (scope `admin`): subscriptions, their delivery log, redelivery and
replay. The webhooks service does the work (see protos/loyalty/webhooks/v1/webhooks.proto)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from gateway.auth import operator
from gateway.backends import Backends
from gateway.dialect import IsoDatetime, model_for, to_json
from gateway.routes.common import PAGE_SIZE, PageSize, PageToken, backends, idempotency_key
from loyalty.webhooks.v1 import webhooks_pb2 as pb

router = APIRouter(prefix="/v1/admin/webhooks", tags=["admin"], dependencies=[Depends(operator)])
Services = Annotated[Backends, Depends(backends)]
Idem = Annotated[str, Depends(idempotency_key)]
Id = Annotated[str, Path(pattern=r"^[0-9]{1,18}$")]
Json = dict[str, Any]
STATUSES = {
    "PENDING": pb.DELIVERY_STATUS_PENDING,
    "DELIVERED": pb.DELIVERY_STATUS_DELIVERED,
    "FAILED": pb.DELIVERY_STATUS_FAILED,
}


class SubscriptionIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048, examples=["https://crm.example.com/hooks"])
    event_types: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1, max_length=50, examples=[["points.credited", "tier.changed"]]
    )
    description: str = Field(default="", max_length=500)


class SubscriptionChange(SubscriptionIn):
    enabled: bool


class Rotation(BaseModel):
    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=7 * 86400,
        description="how long the old secret keeps signing; 0 ends it now; absent: one day",
    )


class Window(BaseModel):
    start_time: IsoDatetime
    end_time: IsoDatetime


def _subscription(body: SubscriptionIn, subscription_id: str = "") -> pb.Subscription:
    return pb.Subscription(
        subscription_id=subscription_id,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        enabled=getattr(body, "enabled", True),
    )


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=model_for(pb.CreateSubscriptionResponse.DESCRIPTOR),
)
async def create_subscription(body: SubscriptionIn, services: Services, idem: Idem) -> Json:
    """Subscribe an endpoint to event types ("*": all). The signing secret is in this answer
    only."""
    reply = await services.webhooks.CreateSubscription(
        pb.CreateSubscriptionRequest(subscription=_subscription(body), request_id=idem),
        timeout=services.admin_timeout,
    )
    return to_json(reply)


@router.get("/subscriptions", response_model=model_for(pb.ListSubscriptionsResponse.DESCRIPTOR))
async def list_subscriptions(services: Services) -> Json:
    """Every subscription, oldest first."""
    reply = await services.webhooks.ListSubscriptions(
        pb.ListSubscriptionsRequest(), timeout=services.timeout
    )
    return to_json(reply)


@router.get(
    "/subscriptions/{subscription_id}", response_model=model_for(pb.Subscription.DESCRIPTOR)
)
async def get_subscription(subscription_id: Id, services: Services) -> Json:
    """One subscription, with the deliveries waiting for it."""
    reply = await services.webhooks.GetSubscription(
        pb.GetSubscriptionRequest(subscription_id=subscription_id), timeout=services.timeout
    )
    return to_json(reply.subscription)


@router.put(
    "/subscriptions/{subscription_id}", response_model=model_for(pb.Subscription.DESCRIPTOR)
)
async def update_subscription(
    subscription_id: Id, body: SubscriptionChange, services: Services, idem: Idem
) -> Json:
    """Replace the endpoint, types and description; enable or disable (enabling resumes
    what waited, in order)."""
    reply = await services.webhooks.UpdateSubscription(
        pb.UpdateSubscriptionRequest(
            subscription=_subscription(body, subscription_id), request_id=idem
        ),
        timeout=services.admin_timeout,
    )
    return to_json(reply.subscription)


@router.post(
    "/subscriptions/{subscription_id}/secret",
    response_model=model_for(pb.RotateSecretResponse.DESCRIPTOR),
)
async def rotate_secret(
    subscription_id: Id, body: Rotation, services: Services, idem: Idem
) -> Json:
    """A new signing secret (in this answer only); the old one keeps signing too until the
    overlap ends."""
    reply = await services.webhooks.RotateSecret(
        pb.RotateSecretRequest(
            subscription_id=subscription_id, overlap_seconds=body.overlap_seconds, request_id=idem
        ),
        timeout=services.admin_timeout,
    )
    return to_json(reply)


@router.get(
    "/subscriptions/{subscription_id}/deliveries",
    response_model=model_for(pb.ListDeliveriesResponse.DESCRIPTOR),
)
async def list_deliveries(
    subscription_id: Id,
    services: Services,
    status: Literal["PENDING", "DELIVERED", "FAILED"] | None = None,
    page_size: PageSize = PAGE_SIZE,
    page_token: PageToken = "",
) -> Json:
    """The delivery log, newest first: status, attempts, the last answer."""
    reply = await services.webhooks.ListDeliveries(
        pb.ListDeliveriesRequest(
            subscription_id=subscription_id,
            status=STATUSES[status] if status else pb.DELIVERY_STATUS_UNSPECIFIED,
            page_size=page_size,
            page_token=page_token,
        ),
        timeout=services.timeout,
    )
    return to_json(reply)


@router.post(
    "/subscriptions/{subscription_id}/replay",
    response_model=model_for(pb.ReplayWindowResponse.DESCRIPTOR),
)
async def replay_window(subscription_id: Id, body: Window, services: Services, idem: Idem) -> Json:
    """Deliver again every event of a window (at most 31 days) the subscription wants."""
    request = pb.ReplayWindowRequest(subscription_id=subscription_id, request_id=idem)
    request.time_range.start_time.FromDatetime(body.start_time)
    request.time_range.end_time.FromDatetime(body.end_time)
    reply = await services.webhooks.ReplayWindow(request, timeout=services.admin_timeout)
    return to_json(reply)


@router.post(
    "/deliveries/{delivery_id}/redeliver", response_model=model_for(pb.Delivery.DESCRIPTOR)
)
async def redeliver(delivery_id: Id, services: Services, idem: Idem) -> Json:
    """Send one delivery's event again (after the member's earlier deliveries)."""
    reply = await services.webhooks.Redeliver(
        pb.RedeliverRequest(delivery_id=delivery_id, request_id=idem),
        timeout=services.admin_timeout,
    )
    return to_json(reply.delivery)
