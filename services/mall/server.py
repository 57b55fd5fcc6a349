"""Mall service wiring: `python -m services.mall.server`."""

from __future__ import annotations

from pathlib import Path

import grpc

from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.mall.v1 import mall_pb2, mall_pb2_grpc
from loyalty.rules.v1 import rules_pb2_grpc
from services.common.server import Runtime, ServiceSpec, run
from services.common.settings import peer_address
from services.mall.checkout import Checkout
from services.mall.config import MallConfig
from services.mall.lottery import Lotteries
from services.mall.saga import Saga
from services.mall.servicer import MallServicer


async def register(server: grpc.aio.Server, runtime: Runtime) -> None:
    source = runtime.settings.source
    config = MallConfig.from_env(source)
    ledger_channel = grpc.aio.insecure_channel(peer_address("ledger", source))
    rules_channel = grpc.aio.insecure_channel(peer_address("rules", source))
    saga = Saga(
        runtime.pool,
        config,
        ledger_pb2_grpc.LedgerServiceStub(ledger_channel),
        rules_pb2_grpc.RulesServiceStub(rules_channel),
    )
    ledger = ledger_pb2_grpc.LedgerServiceStub(ledger_channel)
    checkout = Checkout(runtime.pool, config, ledger)
    lotteries = Lotteries(runtime.pool, config, ledger)
    mall_pb2_grpc.add_MallServiceServicer_to_server(
        MallServicer(runtime.pool, saga, checkout, lotteries), server
    )
    runtime.spawn("saga-recovery", saga.recover_forever)
    runtime.spawn("draw-recovery", lotteries.recover_forever)

    async def close_channels() -> None:
        await ledger_channel.close()
        await rules_channel.close()

    runtime.on_stop(close_channels)


SPEC = ServiceSpec(
    name="mall",
    service_names=(mall_pb2.DESCRIPTOR.services_by_name["MallService"].full_name,),
    register=register,
    migrations_dir=Path(__file__).parent / "migrations",
)

if __name__ == "__main__":
    run(SPEC)
