"""Subscriptions and the events they receive: what the webhooks service decides between its
gRPC edge and its SQL. Events come in from the outboxes (each becomes one delivery per
matching subscription); operators subscribe, rotate secrets, redeliver and replay. Delivery
itself is `delivery.py`'s."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from asyncpg import Record

from loyalty.webhooks.v1 import webhooks_pb2 as pb
from services.common.errors import FieldViolation, InvalidArgument, NotFound
from services.common.outbox import EVENT_TYPES, Origin, envelope_of
from services.common.paging import Pager, token_number
from services.common.timestamps import from_timestamp
from services.common.validation import Checker, ascii_number
from services.webhooks import repository as repo
from services.webhooks import signing
from services.webhooks.config import WebhooksConfig
from services.webhooks.endpoints import EndpointRefused, resolve

TYPES = frozenset(t for types in EVENT_TYPES.values() for t in types)
MAX_EVENTS = 1000
MAX_OVERLAP = 7 * 86400
DEFAULT_OVERLAP = 86400
MAX_REPLAY = timedelta(days=31)


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


def _row_of(c: Checker, where: str, event: pb.Event) -> tuple[object, ...] | None:
    """The stored row of one published event, or None after failing its fields."""
    try:
        data = json.loads(event.data_json)
    except ValueError:
        data = None
    if not c.require(isinstance(data, dict), f"{where}.data_json", "must be a JSON object"):
        return None
    c.require(event.type in TYPES, f"{where}.type", "not an event type of the suite")
    c.require(event.HasField("occurred_at"), f"{where}.occurred_at", "is required")
    c.require(event.source in EVENT_TYPES, f"{where}.source", "ledger, rules or mall")
    c.require(event.sequence >= 1, f"{where}.sequence", "the member's number, from 1")
    c.text(f"{where}.member_id", event.member_id, 128, required=False)
    return (
        event.event_id,
        event.type,
        event.member_id,
        from_timestamp(event.occurred_at),
        event.source,
        event.sequence,
        envelope(event, data),
    )


def _not_allowed(refusal: EndpointRefused) -> InvalidArgument:
    return InvalidArgument(
        "ENDPOINT_NOT_ALLOWED",
        f"subscription.url {refusal}",
        violations=[FieldViolation("subscription.url", str(refusal))],
    )


def number_id(value: str, field: str, reason: str, what: str) -> int:
    """A numeric id, or NOT_FOUND (an id we never issued names nothing)."""
    number = ascii_number(value)
    if number is None:
        raise NotFound(reason, f"no such {what}", {field: value[:64]})
    return number


def subscription_id(value: str) -> int:
    return number_id(value, "subscription_id", "SUBSCRIPTION_NOT_FOUND", "subscription")


def found(row: Record | None, subscription: int) -> Record:
    if row is None:
        raise NotFound(
            "SUBSCRIPTION_NOT_FOUND", "no such subscription", {"subscription_id": str(subscription)}
        )
    return row


class Subscriptions:
    def __init__(self, pool: asyncpg.Pool, config: WebhooksConfig) -> None:
        self.pool = pool
        self.config = config

    async def publish(self, events: list[pb.Event]) -> tuple[int, int]:
        """Store new events and queue their deliveries: (events accepted, deliveries queued).
        An event seen before (its id) is skipped: the relays deliver at least once."""
        c = Checker()
        c.require(len(events) <= MAX_EVENTS, "events", f"at most {MAX_EVENTS}")
        rows = [_row_of(c, f"events[{n}]", event) for n, event in enumerate(events)]
        c.done()
        async with self.pool.acquire() as conn:
            try:
                return await repo.publish(conn, [r for r in rows if r is not None])
            except (asyncpg.DataError, asyncpg.InvalidTextRepresentationError):
                raise InvalidArgument.fields(
                    [FieldViolation("events", "event_id must be a UUID")]
                ) from None

    async def check(self, subscription: pb.Subscription) -> None:
        c = Checker("subscription")
        c.require(bool(subscription.event_types), "event_types", "at least one type, or *")
        for n, kind in enumerate(subscription.event_types):
            c.require(kind == "*" or kind in TYPES, f"event_types[{n}]", "unknown type")
        c.text("description", subscription.description, 500, required=False)
        c.require(len(subscription.url) <= 2048, "url", "at most 2048 characters")
        c.done()
        try:
            # Bounded: a name that does not answer is refused now, not after the caller's
            # deadline (each attempt resolves it again anyway).
            await asyncio.wait_for(resolve(subscription.url, self.config.allowed_networks), 2)
        except TimeoutError:
            raise _not_allowed(EndpointRefused("does not resolve within 2 s")) from None
        except EndpointRefused as exc:
            raise _not_allowed(exc) from None

    async def create(self, wanted: pb.Subscription) -> tuple[Record, str]:
        """The new subscription and its signing secret (shown once)."""
        await self.check(wanted)
        secret = signing.new_secret()
        async with self.pool.acquire() as conn:
            row = await repo.create_subscription(
                conn, wanted.url, list(wanted.event_types), wanted.description, secret
            )
        return row, secret

    async def update(self, wanted: pb.Subscription) -> Record:
        number = subscription_id(wanted.subscription_id)
        await self.check(wanted)
        async with self.pool.acquire() as conn:
            row = await repo.update_subscription(
                conn,
                number,
                wanted.url,
                list(wanted.event_types),
                wanted.description,
                wanted.enabled,
            )
        return found(row, number)

    async def rotate(self, subscription: str, overlap: int | None) -> tuple[Record, str]:
        """A new secret; the old one keeps signing beside it for `overlap` seconds (None: a
        day; 0 ends it now, for a leaked secret)."""
        number = subscription_id(subscription)
        overlap = DEFAULT_OVERLAP if overlap is None else overlap
        c = Checker()
        c.require(0 <= overlap <= MAX_OVERLAP, "overlap_seconds", f"between 0 and {MAX_OVERLAP}")
        c.done()
        secret = signing.new_secret()
        async with self.pool.acquire() as conn:
            row = await repo.rotate_secret(conn, number, secret, overlap)
        return found(row, number), secret

    async def get(self, subscription: str) -> Record:
        number = subscription_id(subscription)
        async with self.pool.acquire() as conn:
            return found(await repo.subscription(conn, number), number)

    async def all(self) -> list[Record]:
        async with self.pool.acquire() as conn:
            return await repo.subscriptions(conn)

    async def deliveries(self, subscription: str, status: str | None, pager: Pager) -> list[Record]:
        """Up to `pager.fetch` of a subscription's deliveries, newest first."""
        number = subscription_id(subscription)
        before = token_number(pager.after[0]) if pager.after else None
        async with self.pool.acquire() as conn:
            found(await repo.subscription(conn, number), number)
            return await repo.deliveries(conn, number, status, before, pager.fetch)

    async def redeliver(self, delivery: str) -> Record:
        number = number_id(delivery, "delivery_id", "DELIVERY_NOT_FOUND", "delivery")
        async with self.pool.acquire() as conn:
            row = await repo.redeliver(conn, number)
        if row is None:
            raise NotFound("DELIVERY_NOT_FOUND", "no such delivery", {"delivery_id": str(number)})
        return row

    async def replay(self, subscription: str, start: datetime, end: datetime) -> int:
        """Queue again every event of [start, end) the subscription takes: deliveries queued."""
        number = subscription_id(subscription)
        c = Checker()
        c.require(
            start < end <= start + MAX_REPLAY,
            "time_range",
            "start before end, at most 31 days apart",
        )
        c.done()
        async with self.pool.acquire() as conn:
            found(await repo.subscription(conn, number), number)
            return await repo.replay(conn, number, start, end)
