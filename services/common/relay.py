"""The outbox relay: a service's events, handed to the webhooks service in the order they were
written (a member's events in the order their changes committed), then exactly those marked
published; and the outbox's months kept (services/common/partitions.py).

One relay runs at a time per service (an advisory lock: replicas take turns), which keeps the
order. A crash between the hand-over and the mark sends the same events again; the webhooks
service takes each event id once. Without WEBHOOKS_ADDR events stay in the outbox.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import asyncpg

from loyalty.webhooks.v1 import webhooks_pb2 as wpb
from services.common import outbox
from services.common.metrics import Gauge, SampledGauges, sampled_row
from services.common.periodic import Job, traced_work
from services.common.server import Runtime
from services.common.settings import Env, peer_address
from services.common.timestamps import to_timestamp
from services.common.webhooks_client import WebhooksClient

log = logging.getLogger(__name__)
BATCH = 500


class Relay:
    def __init__(self, pool: asyncpg.Pool, client: WebhooksClient, source: str) -> None:
        self.pool = pool
        self.client = client
        self.source = source

    async def relay_once(self) -> int:
        """Hand over what is waiting, a batch at a time; returns how many events."""
        handed = 0
        while True:
            async with self.pool.acquire() as conn:
                rows = await outbox.unpublished(conn, BATCH)
            if not rows:
                return handed
            with traced_work(
                f"{self.source}.relay_events", attributes={"points.events": len(rows)}
            ):
                await self.client.publish([self._event(r) for r in rows])
                async with self.pool.acquire() as conn:
                    await outbox.mark_published(conn, [r["seq"] for r in rows])
            handed += len(rows)

    def _event(self, row: asyncpg.Record) -> wpb.Event:
        data = row["data"]
        return wpb.Event(
            event_id=str(row["event_id"]),
            type=row["type"],
            occurred_at=to_timestamp(row["occurred_at"]),
            member_id=row["member_id"] or "",
            data_json=data if isinstance(data, str) else json.dumps(data),
            source=self.source,
            sequence=row["member_seq"],
        )


def backlog(pool: asyncpg.Pool) -> SampledGauges:
    return sampled_row(
        pool,
        outbox.backlog,
        [
            (Gauge("points.outbox.unpublished", "{event}", "Events not yet handed on"), "waiting"),
            (Gauge("points.outbox.unpublished.age", "s", "Oldest event not handed on"), "age"),
        ],
    )


def install(runtime: Runtime, source: str) -> None:
    """Relay the service's outbox to WEBHOOKS_ADDR (when set), every OUTBOX_RELAY_SECONDS;
    keep the outbox's monthly partitions (created ahead at start and hourly, dropped after
    OUTBOX_RETENTION_DAYS once handed on)."""
    env = Env(runtime.settings.source)
    retention = timedelta(days=env.integer("OUTBOX_RETENTION_DAYS", 7, minimum=1))
    pool = runtime.pool
    runtime.sample(backlog(pool))
    runtime.every(
        Job(
            "outbox-months",
            3600.0,
            lambda: outbox.keep_months(pool, retention),
            once_across_replicas=True,
            at_start=True,
        )
    )
    if env.optional("WEBHOOKS_ADDR") is None:
        log.info("WEBHOOKS_ADDR is not set: events stay in the outbox")
        return
    client = WebhooksClient(peer_address("webhooks", runtime.settings.source))
    relay = Relay(pool, client, source)
    # A committed event wakes the relay at once (the outbox trigger notifies); the interval is
    # the fallback.
    wake = runtime.wake_on(f"points_outbox_{source}")
    interval = env.number("OUTBOX_RELAY_SECONDS", 0.5, minimum=0.05)
    runtime.every(
        Job("outbox-relay", interval, relay.relay_once, once_across_replicas=True, wake=wake)
    )
    runtime.on_stop(client.close)
