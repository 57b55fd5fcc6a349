"""gRPC channels and typed stubs to the backend services, opened for the app's lifetime."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import grpc

from gateway.wallet_parts import WalletParts
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.mall.v1 import mall_pb2_grpc
from loyalty.rules.v1 import rules_pb2_grpc
from loyalty.webhooks.v1 import webhooks_pb2_grpc
from services.common import catalog
from services.common.peers import open_channel

SERVICES = {s.name: s.full_name for s in catalog.SERVICES}


@dataclass
class Backends:
    addresses: dict[str, str]
    timeout: float  # deadline of each backend call, in seconds
    admin_timeout: float  # deadline of an operator's write
    wallet_parts: WalletParts = field(default_factory=lambda: WalletParts(0.0))
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    # Typed stubs over the channels, set by open().
    ledger: ledger_pb2_grpc.LedgerServiceAsyncStub = field(init=False)
    rules: rules_pb2_grpc.RulesServiceAsyncStub = field(init=False)
    mall: mall_pb2_grpc.MallServiceAsyncStub = field(init=False)
    webhooks: webhooks_pb2_grpc.WebhooksServiceAsyncStub = field(init=False)

    def open(self) -> None:
        # Channels connect lazily; a backend that is down fails its calls, not the gateway.
        # Transient failures are retried by the channel within the call's deadline (the same
        # policy services use between themselves: services/common/peers.py).
        self.channels = {
            name: open_channel(address, SERVICES[name]) for name, address in self.addresses.items()
        }
        # Stubs are built once: a stub makes a callable per method, too slow to do per request.
        self.ledger = ledger_pb2_grpc.LedgerServiceStub(self.channels["ledger"])
        self.rules = rules_pb2_grpc.RulesServiceStub(self.channels["rules"])
        self.mall = mall_pb2_grpc.MallServiceStub(self.channels["mall"])
        self.webhooks = webhooks_pb2_grpc.WebhooksServiceStub(self.channels["webhooks"])

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))
