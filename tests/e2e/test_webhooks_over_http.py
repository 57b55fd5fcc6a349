"""Issue 16's whole story in one run, through the HTTP API: an operator subscribes a receiver
on loopback; members check in, buy, redeem and see points expire; the receiver fails its
first attempts and the webhooks worker is SIGKILLed mid-delivery. Every event every service
wrote arrives, signed (verified with `standardwebhooks`), in order per member and source."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.databases import fresh_database
from tests.support.gateway_calls import bearer
from tests.support.receiver import receiving
from tests.support.suite import define_program_and_sticker, running_suite

SCHEMAS = ("ledger", "rules", "mall")


@pytest.fixture
async def own_database(server_url: str) -> AsyncIterator[str]:
    async with fresh_database(server_url, "points_hooks") as url:
        yield url


async def written(database_url: str) -> dict[str, tuple[str, int, str | None]]:
    """Every event in every outbox: id -> (source, position, member)."""
    conn = await asyncpg.connect(database_url)
    try:
        found = {}
        for schema in SCHEMAS:
            for row in await conn.fetch(f"SELECT event_id, seq, member_id FROM {schema}.outbox"):
                found[str(row["event_id"])] = (schema, row["seq"], row["member_id"])
        return found
    finally:
        await conn.close()


async def test_every_event_arrives_signed_and_in_order(own_database: str) -> None:
    env = {
        "WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
        "WEBHOOKS_RETRY_SECONDS": "0.3,0.3,0.3,0.3,0.3",
        "WEBHOOKS_POLL_SECONDS": "0.05",
        "WEBHOOKS_LEASE_SECONDS": "1",
        "OUTBOX_RELAY_SECONDS": "0.05",
        "RULES_SETTLE_SECONDS": "0.2",
    }
    admin = bearer("ops", "admin")
    async with receiving(hang=True) as receiver, running_suite(own_database, env) as suite:
        await define_program_and_sticker(suite, points_price=3)
        async with httpx.AsyncClient(base_url=suite.gateway_url(), timeout=10) as http:
            created = await http.post(
                "/v1/admin/webhooks/subscriptions",
                json={"url": receiver.url, "event_types": ["*"], "description": "CRM"},
                headers={**admin, "Idempotency-Key": "crm"},
            )
            assert created.status_code == 201, created.text
            secret = created.json()["secret"]

            async def check_in(member: str) -> None:
                headers = {**bearer(member), "Idempotency-Key": f"check-in-{member}"}
                reply = await http.post("/v1/me/check-in", headers=headers)
                assert reply.status_code == 200, reply.text

            await check_in("ann")
            for _ in range(200):  # the first delivery is in flight, held by the receiver
                if receiver.requests:
                    break
                await asyncio.sleep(0.05)
            assert receiver.requests, "nothing was delivered"
            receiver.hang = False
            receiver.fail_first = len(receiver.requests) + 3  # then three refusals
            await suite.kill_and_restart("webhooks")

            await check_in("bob")
            writer = bearer("shop-backend", "events:write")
            for n, member in enumerate(("ann", "bob")):
                bought = await http.post(
                    "/v1/events",
                    json={
                        "user_id": member,
                        "type": "PURCHASE",
                        "amount_minor": 12000,
                        "currency": "CNY",
                        "order_id": f"order-{n}",
                    },
                    headers={**writer, "Idempotency-Key": f"purchase-{n}"},
                )
                assert bought.status_code == 200, bought.text
            redeemed = await http.post(
                "/v1/me/redemptions",
                json={"item_id": "sticker"},
                headers={**bearer("ann"), "Idempotency-Key": "sticker"},
            )
            assert redeemed.json()["status"] == "COMPLETED", redeemed.text
            # Time passes for bob's check-in points: they are due, and an operator's run expires
            # them.
            conn = await asyncpg.connect(own_database)
            try:
                await conn.execute(
                    "UPDATE ledger.lots SET expires_at = now() - interval '1 second' "
                    "WHERE user_id = 'bob' AND matures_at IS NULL"
                )
            finally:
                await conn.close()
            expired = await http.post(
                "/v1/admin/expiry-runs", json={}, headers={**admin, "Idempotency-Key": "run-1"}
            )
            assert expired.json()["points_expired"] == 5, expired.text

            events = await written(own_database)
            for _ in range(300):
                answered = {r.headers["webhook-id"] for r in receiver.requests}
                if answered >= set(events) and not await _waiting(own_database):
                    break
                await asyncio.sleep(0.1)
                events = await written(own_database)
    hook = Webhook(secret)
    received = [hook.verify(r.body, r.headers) for r in receiver.requests]
    delivered: list[dict[str, Any]] = []  # the requests answered 200, in arrival order
    for n, event in enumerate(received, start=1):
        if n > receiver.fail_first:
            delivered.append(event)
    # Every event was answered 200 at least once: the killed worker's one too (its lease ran
    # out), and the three refused ones (retried).
    assert {e["id"] for e in delivered} == set(events)
    assert received[0]["id"] in [e["id"] for e in delivered]
    kinds = {e["type"] for e in received}
    assert {
        "points.credited",
        "points.debited",
        "points.expired",
        "redemption.completed",
    } <= kinds
    for member in ("ann", "bob"):
        for source in SCHEMAS:
            order = [
                events[e["id"]][1]
                for e in delivered
                if events[e["id"]][0] == source and e["member_id"] == member
            ]
            assert order == sorted(order), (member, source)  # in each outbox's order
    assert all(json.loads(r.body)["schema_version"] == 1 for r in receiver.requests)


async def _waiting(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM webhooks.deliveries WHERE status = 'PENDING'"
        )
        return count
    finally:
        await conn.close()
