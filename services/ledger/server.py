"""Ledger service wiring: `python -m services.ledger.server`."""

from __future__ import annotations

from pathlib import Path

import grpc

from loyalty.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from services.common import idempotency, relay
from services.common.server import Runtime, ServiceSpec, run
from services.ledger import measures
from services.ledger.config import LedgerConfig
from services.ledger.jobs import jobs
from services.ledger.servicer import LedgerServicer
from services.ledger.watch import BalanceWatchers


async def register(server: grpc.aio.Server, runtime: Runtime) -> None:
    config = LedgerConfig.from_env(runtime.settings.source)
    watchers = BalanceWatchers(runtime.listener())
    servicer = LedgerServicer(runtime.pool, config, watchers)
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(servicer, server)
    runtime.on_start(servicer.group_commit.start)
    runtime.on_stop(servicer.group_commit.stop)
    for job in jobs(runtime.pool, servicer.ops, config):
        runtime.every(job)
    idempotency.keep_requests(runtime)
    runtime.sample(measures.sampled(runtime.pool))
    relay.install(runtime, "ledger")


SPEC = ServiceSpec(
    name="ledger",
    service_names=(ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name,),
    register=register,
    migrations_dir=Path(__file__).parent / "migrations",
)

if __name__ == "__main__":
    run(SPEC)
