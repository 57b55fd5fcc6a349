"""Nothing dies silently: a balance watcher keeps hearing credits after the ledger's LISTEN
connection is cut and after the database drops every connection and refuses new ones for a
while (what a restart looks like to a client). Meanwhile health says NOT_SERVING."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import grpc
from grpc_health.v1 import health_pb2

from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from services.ledger.server import SPEC as LEDGER
from tests.support.databases import terminate_connections
from tests.support.hosts import health_status, running
from tests.support.ledger_calls import Stub, credit, rid

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def next_available(stream: AsyncIterator[pb.WatchBalanceResponse]) -> int:
    reply = await asyncio.wait_for(anext(stream), 20)
    return reply.balance.available


async def credit_until_it_lands(ledger: Stub, user: str, amount: int) -> None:
    """A credit retried with the same request id while the database comes back."""
    request_id = rid()
    for _ in range(200):
        try:
            await credit(ledger, user, amount, request_id=request_id)
            return
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            await asyncio.sleep(0.05)
    raise AssertionError("the credit never landed")


async def until_health(address: str, wanted: int) -> None:
    for _ in range(400):
        if await health_status(address) == wanted:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"health never became {wanted}")


async def test_a_watcher_hears_credits_after_the_listener_and_the_database_come_back(
    private_database: str, server_url: str
) -> None:
    database = private_database.rsplit("/", 1)[1]
    async with (
        running(LEDGER, private_database, {"DB_POOL_MIN": "1"}) as host,
        grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel,
    ):
        address = f"127.0.0.1:{host.port}"
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        stream = ledger.WatchBalance(pb.WatchBalanceRequest(user_id="watched")).__aiter__()
        assert await next_available(stream) == 0

        # The listener's own backend is terminated (an operator, a proxy's idle timeout).
        admin = await asyncpg.connect(server_url)
        try:
            cut = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND application_name = 'points-ledger-listen'",
                database,
            )
        finally:
            await admin.close()
        assert cut == 1
        await credit_until_it_lands(ledger, "watched", 5)
        while await next_available(stream) != 5:  # a re-read after reconnecting may come first
            pass

        # Every connection dropped, and new ones refused for a while: health says so.
        blackout = asyncio.create_task(
            terminate_connections(server_url, database, 2.0, refuse_new=True)
        )
        await until_health(address, NOT_SERVING)
        await blackout
        await until_health(address, SERVING)
        await credit_until_it_lands(ledger, "watched", 7)
        while await next_available(stream) != 12:
            pass
