"""The webhooks gRPC edge: events in from the outboxes, subscriptions and deliveries for
operators. Delivery itself is `delivery.py`'s."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import asyncpg
from asyncpg import Record

from loyalty.webhooks.v1 import webhooks_pb2 as pb
from loyalty.webhooks.v1 import webhooks_pb2_grpc
from services.common.errors import FieldViolation, InvalidArgument, NotFound
from services.common.idempotency import RequestLog, idempotent_admin
from services.common.outbox import EVENT_TYPES, Origin, envelope_of
from services.common.paging import decode_token, encode_token, invalid_token
from services.common.timestamps import from_timestamp, to_timestamp
from services.common.validation import ascii_number, check_text, raise_if
from services.webhooks import repository as repo
from services.webhooks import signing
from services.webhooks.config import WebhooksConfig
from services.webhooks.endpoints import EndpointRefused, resolve

Context = Any
TYPES = frozenset(t for types in EVENT_TYPES.values() for t in types)
MAX_EVENTS = 1000
MAX_OVERLAP = 7 * 86400
STATUSES = {
    pb.DELIVERY_STATUS_PENDING: "PENDING",
    pb.DELIVERY_STATUS_DELIVERED: "DELIVERED",
    pb.DELIVERY_STATUS_FAILED: "FAILED",
}


def envelope(event: pb.Event, data: dict[str, Any]) -> str:
    """The body every subscriber gets for this event (see events/schemas/envelope.json)."""
    body = envelope_of(
        event.event_id,
        event.type,
        from_timestamp(event.occurred_at),
        event.member_id or None,
        data,
        Origin(event.source, event.sequence),
    )
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def subscription_of(row: Record) -> pb.Subscription:
    message = pb.Subscription(
        subscription_id=str(row["subscription_id"]),
        url=row["url"],
        event_types=row["event_types"],
        description=row["description"],
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        create_time=to_timestamp(row["created_at"]),
        pending_deliveries=row["pending"],
    )
    if row["previous_secret_until"] is not None:  # the column keeps its name
        message.previous_secret_expire_time.CopyFrom(to_timestamp(row["previous_secret_until"]))
    return message


def delivery_of(row: Record) -> pb.Delivery:
    message = pb.Delivery(
        delivery_id=str(row["delivery_id"]),
        subscription_id=str(row["subscription_id"]),
        event_id=str(row["event_id"]),
        event_type=row["event_type"],
        member_id=row["member_id"],
        status=pb.DeliveryStatus.Value(f"DELIVERY_STATUS_{row['status']}"),
        attempts=row["attempts"],
        last_status_code=row["last_status"],
        last_error=row["last_error"],
        last_latency_ms=row["last_latency_ms"],
        last_response=row["last_response"],
        create_time=to_timestamp(row["created_at"]),
    )
    if row["status"] == "PENDING":
        message.next_attempt_time.CopyFrom(to_timestamp(row["next_attempt_at"]))
    if row["delivered_at"] is not None:
        message.deliver_time.CopyFrom(to_timestamp(row["delivered_at"]))
    return message


def _not_allowed(refusal: EndpointRefused) -> InvalidArgument:
    return InvalidArgument(
        "ENDPOINT_NOT_ALLOWED",
        f"subscription.url {refusal}",
        violations=[FieldViolation("subscription.url", str(refusal))],
    )


def _id(value: str, field: str, reason: str, what: str) -> int:
    """A numeric id, or NOT_FOUND (an id we never issued names nothing)."""
    number = ascii_number(value)
    if number is None:
        raise NotFound(reason, f"no such {what}", {field: value[:64]})
    return number


class WebhooksServicer(webhooks_pb2_grpc.WebhooksServiceServicer):
    def __init__(self, pool: asyncpg.Pool, config: WebhooksConfig) -> None:
        self.pool = pool
        self.config = config
        self.requests = RequestLog(pool)

    async def PublishEvents(
        self, request: pb.PublishEventsRequest, context: Context
    ) -> pb.PublishEventsResponse:
        bad = []
        if len(request.events) > MAX_EVENTS:
            bad.append(FieldViolation("events", f"at most {MAX_EVENTS}"))
        rows = []
        for n, event in enumerate(request.events):
            where = f"events[{n}]"
            try:
                data = json.loads(event.data_json)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                bad.append(FieldViolation(f"{where}.data_json", "must be a JSON object"))
                continue
            if event.type not in TYPES:
                bad.append(FieldViolation(f"{where}.type", "not an event type of the suite"))
            if not event.HasField("occurred_at"):
                bad.append(FieldViolation(f"{where}.occurred_at", "is required"))
            if event.source not in EVENT_TYPES:
                bad.append(FieldViolation(f"{where}.source", "ledger, rules or mall"))
            if event.sequence < 1:
                bad.append(FieldViolation(f"{where}.sequence", "the member's number, from 1"))
            check_text(bad, f"{where}.member_id", event.member_id, 128, required=False)
            rows.append(
                (
                    event.event_id,
                    event.type,
                    event.member_id,
                    from_timestamp(event.occurred_at),
                    event.source,
                    event.sequence,
                    envelope(event, data),
                )
            )
        raise_if(bad)
        async with self.pool.acquire() as conn:
            try:
                accepted, queued = await repo.publish(conn, rows)
            except (asyncpg.DataError, asyncpg.InvalidTextRepresentationError):
                raise InvalidArgument.fields(
                    [FieldViolation("events", "event_id must be a UUID")]
                ) from None
        return pb.PublishEventsResponse(accepted=accepted, deliveries=queued)

    async def _checked(self, subscription: pb.Subscription) -> None:
        bad: list[FieldViolation] = []
        if not subscription.event_types:
            bad.append(FieldViolation("subscription.event_types", "at least one type, or *"))
        for n, kind in enumerate(subscription.event_types):
            if kind != "*" and kind not in TYPES:
                bad.append(FieldViolation(f"subscription.event_types[{n}]", "unknown type"))
        check_text(bad, "subscription.description", subscription.description, 500, required=False)
        if len(subscription.url) > 2048:
            bad.append(FieldViolation("subscription.url", "at most 2048 characters"))
        raise_if(bad)
        try:
            # Bounded: a name that does not answer is refused now, not after the caller's
            # deadline (each attempt resolves it again anyway).
            await asyncio.wait_for(resolve(subscription.url, self.config.allowed_networks), 2)
        except TimeoutError:
            raise _not_allowed(EndpointRefused("does not resolve within 2 s")) from None
        except EndpointRefused as exc:
            raise _not_allowed(exc) from None

    @idempotent_admin(pb.CreateSubscriptionResponse)
    async def CreateSubscription(
        self, request: pb.CreateSubscriptionRequest, context: Context
    ) -> pb.CreateSubscriptionResponse:
        wanted = request.subscription
        await self._checked(wanted)
        secret = signing.new_secret()
        async with self.pool.acquire() as conn:
            row = await repo.create_subscription(
                conn, wanted.url, list(wanted.event_types), wanted.description, secret
            )
        return pb.CreateSubscriptionResponse(subscription=subscription_of(row), secret=secret)

    @idempotent_admin(pb.UpdateSubscriptionResponse)
    async def UpdateSubscription(
        self, request: pb.UpdateSubscriptionRequest, context: Context
    ) -> pb.UpdateSubscriptionResponse:
        wanted = request.subscription
        subscription_id = self._subscription_id(wanted.subscription_id)
        await self._checked(wanted)
        async with self.pool.acquire() as conn:
            row = await repo.update_subscription(
                conn,
                subscription_id,
                wanted.url,
                list(wanted.event_types),
                wanted.description,
                wanted.enabled,
            )
        return pb.UpdateSubscriptionResponse(subscription=self._found(row, subscription_id))

    @idempotent_admin(pb.RotateSecretResponse)
    async def RotateSecret(
        self, request: pb.RotateSecretRequest, context: Context
    ) -> pb.RotateSecretResponse:
        subscription_id = self._subscription_id(request.subscription_id)
        # 0 is a real answer (a leaked secret must stop now); only an absent field defaults.
        overlap = request.overlap_seconds if request.HasField("overlap_seconds") else 86400
        if not 0 <= overlap <= MAX_OVERLAP:
            raise InvalidArgument.fields(
                [FieldViolation("overlap_seconds", f"between 0 and {MAX_OVERLAP}")]
            )
        secret = signing.new_secret()
        async with self.pool.acquire() as conn:
            row = await repo.rotate_secret(conn, subscription_id, secret, overlap)
        return pb.RotateSecretResponse(
            subscription=self._found(row, subscription_id), secret=secret
        )

    async def GetSubscription(
        self, request: pb.GetSubscriptionRequest, context: Context
    ) -> pb.GetSubscriptionResponse:
        subscription_id = self._subscription_id(request.subscription_id)
        async with self.pool.acquire() as conn:
            row = await repo.subscription(conn, subscription_id)
        return pb.GetSubscriptionResponse(subscription=self._found(row, subscription_id))

    async def ListSubscriptions(
        self, request: pb.ListSubscriptionsRequest, context: Context
    ) -> pb.ListSubscriptionsResponse:
        async with self.pool.acquire() as conn:
            rows = await repo.subscriptions(conn)
        return pb.ListSubscriptionsResponse(subscriptions=[subscription_of(r) for r in rows])

    async def ListDeliveries(
        self, request: pb.ListDeliveriesRequest, context: Context
    ) -> pb.ListDeliveriesResponse:
        subscription_id = self._subscription_id(request.subscription_id)
        if not 0 <= request.page_size <= 100:
            raise InvalidArgument.fields([FieldViolation("page_size", "between 0 and 100")])
        before = None
        if request.page_token:
            (token,) = decode_token(request.page_token, 1)
            before = ascii_number(token)
            if before is None:
                raise invalid_token()
        limit = request.page_size or 50
        async with self.pool.acquire() as conn:
            if await repo.subscription(conn, subscription_id) is None:
                self._found(None, subscription_id)
            rows = await repo.deliveries(
                conn, subscription_id, STATUSES.get(request.status), before, limit + 1
            )
        response = pb.ListDeliveriesResponse(deliveries=[delivery_of(r) for r in rows[:limit]])
        if len(rows) > limit:
            response.next_page_token = encode_token(str(rows[limit - 1]["delivery_id"]))
        return response

    @idempotent_admin(pb.RedeliverResponse)
    async def Redeliver(
        self, request: pb.RedeliverRequest, context: Context
    ) -> pb.RedeliverResponse:
        delivery_id = _id(request.delivery_id, "delivery_id", "DELIVERY_NOT_FOUND", "delivery")
        async with self.pool.acquire() as conn:
            row = await repo.redeliver(conn, delivery_id)
        if row is None:
            raise NotFound(
                "DELIVERY_NOT_FOUND", "no such delivery", {"delivery_id": str(delivery_id)}
            )
        return pb.RedeliverResponse(delivery=delivery_of(row))

    @idempotent_admin(pb.ReplayWindowResponse)
    async def ReplayWindow(
        self, request: pb.ReplayWindowRequest, context: Context
    ) -> pb.ReplayWindowResponse:
        subscription_id = self._subscription_id(request.subscription_id)
        window = request.time_range
        bad = [
            FieldViolation(f"time_range.{name}", "is required")
            for name in ("start_time", "end_time")
            if not window.HasField(name)
        ]
        raise_if(bad)
        start, end = from_timestamp(window.start_time), from_timestamp(window.end_time)
        if not start < end <= start + timedelta(days=31):
            raise InvalidArgument.fields(
                [FieldViolation("time_range", "start before end, at most 31 days apart")]
            )
        async with self.pool.acquire() as conn:
            if await repo.subscription(conn, subscription_id) is None:
                self._found(None, subscription_id)
            queued = await repo.replay(conn, subscription_id, start, end)
        return pb.ReplayWindowResponse(deliveries=queued)

    @staticmethod
    def _subscription_id(value: str) -> int:
        return _id(value, "subscription_id", "SUBSCRIPTION_NOT_FOUND", "subscription")

    @staticmethod
    def _found(row: Record | None, subscription_id: int) -> pb.Subscription:
        if row is None:
            raise NotFound(
                "SUBSCRIPTION_NOT_FOUND",
                "no such subscription",
                {"subscription_id": str(subscription_id)},
            )
        return subscription_of(row)
