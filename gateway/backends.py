"""gRPC channels and typed stubs to the backend services, opened for the app's lifetime."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import grpc

from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.mall.v1 import mall_pb2_grpc
from loyalty.rules.v1 import rules_pb2_grpc


@dataclass
class Backends:
    addresses: dict[str, str]
    timeout: float  # deadline of each backend call, in seconds
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def open(self) -> None:
        # Channels connect lazily; a backend that is down fails its calls, not the gateway.
        self.channels = {name: grpc.aio.insecure_channel(a) for name, a in self.addresses.items()}

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))

    @property
    def ledger(self) -> ledger_pb2_grpc.LedgerServiceAsyncStub:
        return ledger_pb2_grpc.LedgerServiceStub(self.channels["ledger"])

    @property
    def rules(self) -> rules_pb2_grpc.RulesServiceAsyncStub:
        return rules_pb2_grpc.RulesServiceStub(self.channels["rules"])

    @property
    def mall(self) -> mall_pb2_grpc.MallServiceAsyncStub:
        return mall_pb2_grpc.MallServiceStub(self.channels["mall"])
