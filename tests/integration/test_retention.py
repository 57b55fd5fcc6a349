"""No table grows forever: every service's request ids, and the webhooks service's settled
deliveries and events, are forgotten after their retention by a job the service registers."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import pytest

from services.common import periodic
from services.common.server import ServiceHost, ServiceSpec
from services.ledger.server import SPEC as LEDGER
from services.mall.server import SPEC as MALL
from services.rules.server import SPEC as RULES
from services.webhooks.server import SPEC as WEBHOOKS
from tests.support.hosts import running


def job(host: ServiceHost, name: str) -> periodic.Job:
    assert host._runtime is not None
    [found] = [j for j in host._runtime.jobs if j.name == name]
    return found


@pytest.mark.parametrize("spec", [LEDGER, RULES, MALL, WEBHOOKS], ids=lambda s: s.name)
async def test_every_services_request_ids_are_forgotten_after_their_retention(
    private_database: str, spec: ServiceSpec
) -> None:
    env = {f"{spec.name.upper()}_REQUEST_RETENTION_DAYS": "2"}
    async with running(spec, private_database, env) as host:
        conn = await asyncpg.connect(private_database, server_settings={"search_path": spec.name})
        try:
            for request_id, age in (("old", timedelta(days=3)), ("recent", timedelta(days=1))):
                await conn.execute(
                    "INSERT INTO requests (user_id, request_id, method, payload_sha256, "
                    "created_at) VALUES ('u', $1, 'M', '\\x00', now() - $2::interval)",
                    request_id,
                    age,
                )
            await periodic.run_once(job(host, "request-retention"), host._runtime.pool)  # type: ignore[union-attr]
            kept = await conn.fetch("SELECT request_id FROM requests ORDER BY request_id")
        finally:
            await conn.close()
    assert [r["request_id"] for r in kept] == ["recent"]


async def test_settled_deliveries_and_their_events_go_after_the_retention(
    private_database: str,
) -> None:
    async with running(WEBHOOKS, private_database, {"WEBHOOKS_RETENTION_DAYS": "30"}) as host:
        conn = await asyncpg.connect(private_database, server_settings={"search_path": "webhooks"})
        try:
            subscription = await conn.fetchval(
                # Disabled, and on loopback: nothing is ever sent for it.
                "INSERT INTO subscriptions (url, event_types, secret, enabled) "
                "VALUES ('http://127.0.0.1:9/h', '{*}', 's', false) RETURNING subscription_id"
            )
            events = {}
            for name, age, status in (
                ("old-delivered", timedelta(days=40), "DELIVERED"),
                ("old-failed", timedelta(days=40), "FAILED"),
                ("old-pending", timedelta(days=40), "PENDING"),  # still owed: kept, with its event
                ("recent", timedelta(days=1), "DELIVERED"),
            ):
                events[name] = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO events (event_id, type, member_id, occurred_at, source, "
                    "sequence, body) VALUES ($1, 'points.credited', 'm', now() - $2::interval, "
                    "'ledger', 1, '{}')",
                    events[name],
                    age,
                )
                await conn.execute(
                    "INSERT INTO deliveries (subscription_id, event_id, member_id, status, "
                    "created_at) VALUES ($1, $2, 'm', $3, now() - $4::interval)",
                    subscription,
                    events[name],
                    status,
                    age,
                )
            await periodic.run_once(job(host, "delivery-retention"), host._runtime.pool)  # type: ignore[union-attr]
            left = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM deliveries")}
            kept = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM events")}
        finally:
            await conn.close()
    assert left == kept == {events["old-pending"], events["recent"]}
