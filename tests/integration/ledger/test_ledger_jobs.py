"""The ledger's scheduled jobs: expiry without anyone calling ExpirePoints, liability that never
counts what is due, and the retention of idempotency records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest

from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from services.common import idempotency
from services.common.db import create_pool
from services.ledger import requests_repository as requests_repo
from services.ledger.server import SPEC as LEDGER
from tests.support.hosts import running
from tests.support.ledger_calls import Stub, audit_clean, balance, credit, rid


@pytest.fixture
async def scheduled(private_database: str) -> AsyncIterator[Stub]:
    env = {"LEDGER_EXPIRY_SWEEP_SECONDS": "0.2"}
    async with (
        running(LEDGER, private_database, env) as host,
        grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel,
    ):
        yield ledger_pb2_grpc.LedgerServiceStub(channel)


async def test_due_lots_expire_on_schedule(scheduled: Stub, user: str) -> None:
    await credit(scheduled, user, 70, expires_in_seconds=0.5)
    await credit(scheduled, user, 30, expires_in_days=30)
    for _ in range(50):
        if (await balance(scheduled, user)).lifetime_expired == 70:
            break
        await asyncio.sleep(0.1)
    current = await balance(scheduled, user)
    assert (current.available, current.lifetime_expired) == (30, 70)
    stats = await scheduled.GetStats(pb.GetStatsRequest())
    assert (stats.outstanding_liability, stats.expired) == (30, 70)
    listed = await scheduled.ListTransfers(pb.ListTransfersRequest(user_id=user))
    credits = [t for t in listed.transfers if t.kind == pb.TRANSFER_KIND_EARN]
    assert len(credits) == 2 and all(t.HasField("expire_time") for t in credits)
    await audit_clean(scheduled)


@pytest.fixture
async def unswept(private_database: str) -> AsyncIterator[Stub]:
    """A ledger of its own that never expires lots by schedule."""
    async with (
        running(LEDGER, private_database, {"LEDGER_EXPIRY_SWEEP_SECONDS": "0"}) as host,
        grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel,
    ):
        yield ledger_pb2_grpc.LedgerServiceStub(channel)


async def test_liability_excludes_what_is_due_before_the_sweep(unswept: Stub, user: str) -> None:
    await credit(unswept, user, 40, expires_in_seconds=0.3)
    await credit(unswept, user, 60, expires_in_days=30)
    await asyncio.sleep(0.5)  # due now, and nothing sweeps it
    stats = await unswept.GetStats(pb.GetStatsRequest())
    assert (stats.outstanding_liability, stats.expired) == (60, 0)
    assert (await balance(unswept, user)).lifetime_expired == 0  # not swept, yet not owed


async def test_idempotency_records_older_than_the_retention_are_forgotten(
    scheduled: Stub, private_database: str, user: str
) -> None:
    ledger, database_url = scheduled, private_database  # others' records stay untouched
    old, recent = rid(), rid()
    await credit(ledger, user, 5, request_id=old)
    await asyncio.sleep(0.6)
    await credit(ledger, user, 5, request_id=recent)
    pool = await create_pool(database_url, schema="ledger", application_name="t", min_size=1)
    try:
        async with pool.acquire() as conn:
            while await idempotency.forget(conn, timedelta(seconds=0.5), 1000):
                pass
            assert await requests_repo.find_request(conn, user, old) is None
            assert await requests_repo.find_request(conn, user, recent) is not None
    finally:
        await pool.close()
    # Past the retention the id counts as new: documented, and why the default is 90 days.
    await credit(ledger, user, 5, request_id=old)
    assert (await balance(ledger, user)).available == 15
