"""The webhooks service as the other services call it: publishing their outbox's events."""

from __future__ import annotations

from loyalty.webhooks.v1 import webhooks_pb2 as wpb
from loyalty.webhooks.v1 import webhooks_pb2_grpc
from services.common.peers import PeerClient, open_channel

SERVICE = wpb.DESCRIPTOR.services_by_name["WebhooksService"].full_name


class WebhooksClient(PeerClient):
    peer = "webhooks"

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        super().__init__(timeout)
        self.channel = open_channel(address, SERVICE)
        self.stub = webhooks_pb2_grpc.WebhooksServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def publish(self, events: list[wpb.Event]) -> wpb.PublishEventsResponse:
        return await self.call(self.stub.PublishEvents, wpb.PublishEventsRequest(events=events))
