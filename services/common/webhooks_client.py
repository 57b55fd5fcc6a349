"""The webhooks service as the other services call it: publishing their outbox's events."""

from __future__ import annotations

from loyalty.webhooks.v1 import webhooks_pb2 as wpb
from loyalty.webhooks.v1 import webhooks_pb2_grpc
from services.common import catalog
from services.common.peers import PeerClient

SERVICE = catalog.WEBHOOKS.full_name


class WebhooksClient(PeerClient["webhooks_pb2_grpc.WebhooksServiceAsyncStub"]):
    service = catalog.WEBHOOKS
    stub_type = webhooks_pb2_grpc.WebhooksServiceStub
    default_timeout = 10.0  # a relay's batch of events

    async def publish(self, events: list[wpb.Event]) -> wpb.PublishEventsResponse:
        return await self.call(self.stub.PublishEvents, wpb.PublishEventsRequest(events=events))
