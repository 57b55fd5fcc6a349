"""Rules & risk service wiring: `python -m services.rules.server`."""

from __future__ import annotations

from pathlib import Path

import grpc

from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.rules.v1 import rules_pb2, rules_pb2_grpc
from services.common.server import Runtime, ServiceSpec, run
from services.common.settings import peer_address
from services.rules.config import RulesConfig
from services.rules.servicer import RulesServicer
from services.rules.settlement import Settlement


async def register(server: grpc.aio.Server, runtime: Runtime) -> None:
    config = RulesConfig.from_env(runtime.settings.source)
    ledger_channel = grpc.aio.insecure_channel(peer_address("ledger", runtime.settings.source))
    settlement = Settlement(runtime.pool, ledger_pb2_grpc.LedgerServiceStub(ledger_channel))
    rules_pb2_grpc.add_RulesServiceServicer_to_server(
        RulesServicer(runtime.pool, config, settlement), server
    )
    runtime.spawn("settlement", lambda: settlement.run_forever(config.settle_seconds))

    async def close_channel() -> None:
        await ledger_channel.close()

    runtime.on_stop(close_channel)


SPEC = ServiceSpec(
    name="rules",
    service_names=(rules_pb2.DESCRIPTOR.services_by_name["RulesService"].full_name,),
    register=register,
    migrations_dir=Path(__file__).parent / "migrations",
)

if __name__ == "__main__":
    run(SPEC)
