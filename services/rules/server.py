"""Rules & risk service wiring: `python -m services.rules.server`."""

from __future__ import annotations

from pathlib import Path

import grpc

from loyalty.rules.v1 import rules_pb2, rules_pb2_grpc
from services.common import idempotency, partitions, relay
from services.common.dead_letter_desk import DeadLetterDesk
from services.common.ledger_client import LedgerClient
from services.common.periodic import Job
from services.common.server import Runtime, ServiceSpec, run
from services.common.settings import peer_address
from services.rules import measures
from services.rules.config import RulesConfig
from services.rules.repository import reviews as reviews_repo
from services.rules.servicer import RulesServicer
from services.rules.settlement import Settlement


async def register(server: grpc.aio.Server, runtime: Runtime) -> None:
    config = RulesConfig.from_env(runtime.settings.source)
    ledger = LedgerClient(peer_address("ledger", runtime.settings.source))
    settlement = Settlement(runtime.pool, ledger)
    desk = DeadLetterDesk(runtime.pool, settlement.retry)
    servicer = RulesServicer(runtime.pool, config, settlement, desk)
    rules_pb2_grpc.add_RulesServiceServicer_to_server(servicer, server)
    runtime.every(Job("settlement", config.settle_seconds, settlement.settle_backlog))
    runtime.every(
        Job(
            "event-months",
            3600.0,
            lambda: partitions.keep(
                runtime.pool, "events", config.event_retention, reviews_repo.WAITING_FOR_REVIEW
            ),
            once_across_replicas=True,
            at_start=True,
        )
    )
    runtime.every(
        Job(
            "experiments",
            config.experiment_seconds,
            servicer.experiments.tick,
            once_across_replicas=True,
        )
    )
    idempotency.keep_requests(runtime)
    runtime.sample(measures.sampled(runtime.pool, servicer.evaluator))
    relay.install(runtime, "rules")
    runtime.on_stop(ledger.close)


SPEC = ServiceSpec(
    name="rules",
    service_names=(rules_pb2.DESCRIPTOR.services_by_name["RulesService"].full_name,),
    register=register,
    migrations_dir=Path(__file__).parent / "migrations",
)

if __name__ == "__main__":
    run(SPEC)
