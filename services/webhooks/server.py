"""Webhooks service wiring: `python -m services.webhooks.server`."""

from __future__ import annotations

from pathlib import Path

import grpc

from loyalty.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc
from services.common import idempotency
from services.common.periodic import Job
from services.common.server import Runtime, ServiceSpec, run
from services.webhooks import measures
from services.webhooks.config import WebhooksConfig
from services.webhooks.delivery import Deliverer, forget_old
from services.webhooks.repository import DELIVERIES_CHANNEL
from services.webhooks.servicer import WebhooksServicer


async def register(server: grpc.aio.Server, runtime: Runtime) -> None:
    config = WebhooksConfig.from_env(runtime.settings.source)
    webhooks_pb2_grpc.add_WebhooksServiceServicer_to_server(
        WebhooksServicer(runtime.pool, config), server
    )
    deliverer = Deliverer(runtime.pool, config)
    # Every replica delivers: deliveries are leased row by row (SKIP LOCKED). New deliveries
    # wake every replica's workers at once; the poll is the fallback and finds retries.
    wake = runtime.wake_on(DELIVERIES_CHANNEL)
    runtime.every(Job("deliveries", config.poll_seconds, deliverer.deliver_due, wake=wake))
    runtime.every(
        Job(
            "delivery-retention",
            3600.0,
            lambda: forget_old(runtime.pool, config.retention),
            once_across_replicas=True,
        )
    )
    idempotency.keep_requests(runtime)
    runtime.sample(measures.sampled(runtime.pool))
    runtime.on_stop(deliverer.close)


SPEC = ServiceSpec(
    name="webhooks",
    service_names=(webhooks_pb2.DESCRIPTOR.services_by_name["WebhooksService"].full_name,),
    register=register,
    migrations_dir=Path(__file__).parent / "migrations",
)

if __name__ == "__main__":
    run(SPEC)
