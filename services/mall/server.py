"""Mall service wiring: `python -m services.mall.server`."""

from __future__ import annotations

from pathlib import Path

import grpc

from loyalty.mall.v1 import mall_pb2, mall_pb2_grpc
from services.common import idempotency, relay
from services.common.dead_letter_desk import DeadLetterDesk, not_retryable
from services.common.dead_letters import Letter
from services.common.ledger_client import LedgerClient
from services.common.periodic import Job
from services.common.rules_client import RulesClient
from services.common.server import Runtime, ServiceSpec, run
from services.common.settings import peer_address
from services.mall import measures
from services.mall.checkout import Checkout
from services.mall.config import MallConfig
from services.mall.lottery import Lotteries
from services.mall.saga import Saga
from services.mall.servicer import MallServicer


async def register(server: grpc.aio.Server, runtime: Runtime) -> None:
    source = runtime.settings.source
    config = MallConfig.from_env(source)
    ledger = LedgerClient(peer_address("ledger", source))
    rules = RulesClient(peer_address("rules", source))
    saga = Saga(runtime.pool, config, ledger, rules)
    checkout = Checkout(runtime.pool, config, ledger, rules)
    lotteries = Lotteries(runtime.pool, config, ledger, rules)
    desk = DeadLetterDesk(runtime.pool, retry_dead_letter)
    mall_pb2_grpc.add_MallServiceServicer_to_server(
        MallServicer(runtime.pool, saga, checkout, lotteries, desk), server
    )
    runtime.every(Job("saga-recovery", config.recovery_seconds, saga.recover_once))
    runtime.every(Job("draw-recovery", config.recovery_seconds, lotteries.recover_once))
    idempotency.keep_requests(runtime)
    runtime.sample(measures.sampled(runtime.pool))
    relay.install(runtime, "mall")
    runtime.on_stop(ledger.close)
    runtime.on_stop(rules.close)


async def retry_dead_letter(letter: Letter) -> None:
    """A refused prize was settled by refunding the draw: the member may simply draw again."""
    raise not_retryable(letter)


SPEC = ServiceSpec(
    name="mall",
    service_names=(mall_pb2.DESCRIPTOR.services_by_name["MallService"].full_name,),
    register=register,
    migrations_dir=Path(__file__).parent / "migrations",
)

if __name__ == "__main__":
    run(SPEC)
