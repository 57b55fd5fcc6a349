"""The webhooks gRPC edge: protobuf in and out; `subscriptions.py` decides."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg import Record

from loyalty.webhooks.v1 import webhooks_pb2 as pb
from loyalty.webhooks.v1 import webhooks_pb2_grpc
from services.common.idempotency import RequestLog, idempotent_admin
from services.common.paging import LIST, Pager
from services.common.timestamps import from_timestamp, to_timestamp
from services.common.validation import Checker
from services.webhooks import approvals, audit
from services.webhooks.config import WebhooksConfig
from services.webhooks.subscriptions import Subscriptions

Context = Any
STATUSES = {
    pb.DELIVERY_STATUS_PENDING: "PENDING",
    pb.DELIVERY_STATUS_DELIVERED: "DELIVERED",
    pb.DELIVERY_STATUS_FAILED: "FAILED",
}


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


class WebhooksServicer(webhooks_pb2_grpc.WebhooksServiceServicer):
    def __init__(self, pool: asyncpg.Pool, config: WebhooksConfig) -> None:
        self.subscriptions = Subscriptions(pool, config)
        self.audit = audit.AuditLog(pool)
        self.approvals = approvals.Approvals(pool)
        self.requests = RequestLog(pool)

    async def PublishEvents(
        self, request: pb.PublishEventsRequest, context: Context
    ) -> pb.PublishEventsResponse:
        accepted, queued = await self.subscriptions.publish(list(request.events))
        return pb.PublishEventsResponse(accepted=accepted, deliveries=queued)

    @idempotent_admin(pb.CreateSubscriptionResponse)
    async def CreateSubscription(
        self, request: pb.CreateSubscriptionRequest, context: Context
    ) -> pb.CreateSubscriptionResponse:
        row, secret = await self.subscriptions.create(request.subscription)
        return pb.CreateSubscriptionResponse(subscription=subscription_of(row), secret=secret)

    @idempotent_admin(pb.UpdateSubscriptionResponse)
    async def UpdateSubscription(
        self, request: pb.UpdateSubscriptionRequest, context: Context
    ) -> pb.UpdateSubscriptionResponse:
        row = await self.subscriptions.update(request.subscription)
        return pb.UpdateSubscriptionResponse(subscription=subscription_of(row))

    @idempotent_admin(pb.RotateSecretResponse)
    async def RotateSecret(
        self, request: pb.RotateSecretRequest, context: Context
    ) -> pb.RotateSecretResponse:
        overlap = request.overlap_seconds if request.HasField("overlap_seconds") else None
        row, secret = await self.subscriptions.rotate(request.subscription_id, overlap)
        return pb.RotateSecretResponse(subscription=subscription_of(row), secret=secret)

    async def GetSubscription(
        self, request: pb.GetSubscriptionRequest, context: Context
    ) -> pb.GetSubscriptionResponse:
        row = await self.subscriptions.get(request.subscription_id)
        return pb.GetSubscriptionResponse(subscription=subscription_of(row))

    async def ListSubscriptions(
        self, request: pb.ListSubscriptionsRequest, context: Context
    ) -> pb.ListSubscriptionsResponse:
        rows = await self.subscriptions.all()
        return pb.ListSubscriptionsResponse(subscriptions=[subscription_of(r) for r in rows])

    async def ListDeliveries(
        self, request: pb.ListDeliveriesRequest, context: Context
    ) -> pb.ListDeliveriesResponse:
        c = Checker()
        pager = Pager(c, LIST, request.page_size, request.page_token)
        c.done()
        rows = await self.subscriptions.deliveries(
            request.subscription_id, STATUSES.get(request.status), pager
        )
        page, token = pager.page(rows, lambda r: [str(r["delivery_id"])])
        return pb.ListDeliveriesResponse(
            deliveries=[delivery_of(r) for r in page], next_page_token=token
        )

    async def RecordAudit(
        self, request: pb.RecordAuditRequest, context: Context
    ) -> pb.RecordAuditResponse:
        return pb.RecordAuditResponse(entry=audit.entry_of(await self.audit.record(request.entry)))

    async def ListAudit(
        self, request: pb.ListAuditRequest, context: Context
    ) -> pb.ListAuditResponse:
        c = Checker()
        c.text("actor", request.actor, 128, required=False)
        c.text("text", request.text, 200, required=False)
        pager = Pager(c, LIST, request.page_size, request.page_token)
        c.done()
        rows = await self.audit.page(request, pager)
        page, token = pager.page(rows, lambda r: [str(r["seq"])])
        return pb.ListAuditResponse(
            entries=[audit.entry_of(r) for r in page], next_page_token=token
        )

    async def RequestApproval(
        self, request: pb.RequestApprovalRequest, context: Context
    ) -> pb.RequestApprovalResponse:
        row = await self.approvals.ask(request.approval)
        return pb.RequestApprovalResponse(approval=approvals.approval_of(row))

    async def ListApprovals(
        self, request: pb.ListApprovalsRequest, context: Context
    ) -> pb.ListApprovalsResponse:
        c = Checker()
        pager = Pager(c, LIST, request.page_size, request.page_token)
        c.done()
        rows = await self.approvals.page(request.status, pager)
        page, token = pager.page(rows, lambda r: [str(r["approval_id"])])
        return pb.ListApprovalsResponse(
            approvals=[approvals.approval_of(r) for r in page], next_page_token=token
        )

    async def GetApproval(
        self, request: pb.GetApprovalRequest, context: Context
    ) -> pb.GetApprovalResponse:
        row = await self.approvals.get(request.approval_id)
        return pb.GetApprovalResponse(approval=approvals.approval_of(row))

    async def DecideApproval(
        self, request: pb.DecideApprovalRequest, context: Context
    ) -> pb.DecideApprovalResponse:
        row = await self.approvals.decide(request.approval_id, request.approve, request.decided_by)
        return pb.DecideApprovalResponse(approval=approvals.approval_of(row))

    async def RecordApprovalResult(
        self, request: pb.RecordApprovalResultRequest, context: Context
    ) -> pb.RecordApprovalResultResponse:
        row = await self.approvals.finish(
            request.approval_id, request.result_status, request.result_json
        )
        return pb.RecordApprovalResultResponse(approval=approvals.approval_of(row))

    @idempotent_admin(pb.RedeliverResponse)
    async def Redeliver(
        self, request: pb.RedeliverRequest, context: Context
    ) -> pb.RedeliverResponse:
        row = await self.subscriptions.redeliver(request.delivery_id)
        return pb.RedeliverResponse(delivery=delivery_of(row))

    @idempotent_admin(pb.ReplayWindowResponse)
    async def ReplayWindow(
        self, request: pb.ReplayWindowRequest, context: Context
    ) -> pb.ReplayWindowResponse:
        window = request.time_range
        c = Checker("time_range")
        for name in ("start_time", "end_time"):
            c.require(window.HasField(name), name, "is required")
        c.done()
        start, end = from_timestamp(window.start_time), from_timestamp(window.end_time)
        queued = await self.subscriptions.replay(request.subscription_id, start, end)
        return pb.ReplayWindowResponse(deliveries=queued)
