"""PostgreSQL drops every connection, again and again, during a redemption burst while every
background loop runs. Callers get clean errors (never INTERNAL), the loops keep going, and once
the database is steady every saga finishes or compensates: stock + sold = initial, every
member's points add up, the ledger's audit is clean."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2

from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.mall.v1 import mall_pb2 as pb
from loyalty.mall.v1 import mall_pb2_grpc
from services.common.errors import parse_rpc_error
from services.common.server import ServiceHost
from services.ledger.server import SPEC as LEDGER
from services.mall.server import SPEC as MALL
from services.rules.server import SPEC as RULES
from tests.support.databases import terminate_connections
from tests.support.hosts import health_status, running
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import audit_clean, balance, credit, rid
from tests.support.mall_calls import MallStub, item, stock_of

USERS = 12
STOCK = 15
PRICE = 100


@pytest.fixture
async def suite(
    private_database: str,
) -> AsyncIterator[tuple[list[ServiceHost], LedgerStub, MallStub]]:
    fast = {"DB_POOL_MIN": "1", "LEDGER_HOLD_SWEEP_SECONDS": "0.2", "RULES_SETTLE_SECONDS": "0.2"}
    async with running(LEDGER, private_database, fast) as ledger_host:
        peers = {**fast, "LEDGER_ADDR": f"127.0.0.1:{ledger_host.port}"}
        async with running(RULES, private_database, peers) as rules_host:
            peers["RULES_ADDR"] = f"127.0.0.1:{rules_host.port}"
            peers["MALL_RECOVERY_SECONDS"] = "0.2"
            peers["MALL_RECOVERY_AFTER_SECONDS"] = "0.5"
            async with (
                running(MALL, private_database, peers) as mall_host,
                grpc.aio.insecure_channel(f"127.0.0.1:{ledger_host.port}") as lchannel,
                grpc.aio.insecure_channel(f"127.0.0.1:{mall_host.port}") as mchannel,
            ):
                yield (
                    [ledger_host, rules_host, mall_host],
                    ledger_pb2_grpc.LedgerServiceStub(lchannel),
                    mall_pb2_grpc.MallServiceStub(mchannel),
                )


async def redeem(mall: MallStub, request: pb.RedeemRequest) -> grpc.StatusCode:
    try:
        await mall.Redeem(request, timeout=20)
    except grpc.aio.AioRpcError as exc:
        return parse_rpc_error(exc).code
    return grpc.StatusCode.OK


@pytest.mark.slow
@pytest.mark.parametrize("refuse_new", [False, True], ids=["dropped", "dropped-and-refused"])
async def test_redemptions_survive_connections_dropped_under_load(
    suite: tuple[list[ServiceHost], LedgerStub, MallStub],
    server_url: str,
    private_database: str,
    refuse_new: bool,
) -> None:
    hosts, ledger, mall = suite
    item_id = await item(mall, stock=STOCK, points_price=PRICE)
    users = [f"blip-{i}-{rid()[:8]}" for i in range(USERS)]
    for user in users:
        await credit(ledger, user, 1000)
    requests = [
        pb.RedeemRequest(request_id=rid(), user_id=user, item_id=item_id, quantity=1)
        for user in users
        for _ in range(2)
    ]
    database = private_database.rsplit("/", 1)[1]
    killer = asyncio.create_task(
        terminate_connections(server_url, database, 2.0, refuse_new=refuse_new)
    )
    codes = await asyncio.gather(*(redeem(mall, r) for r in requests))
    assert await killer > 0
    assert set(codes) <= {
        grpc.StatusCode.OK,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAVAILABLE,
    }, Counter(codes)

    # Clients retry what was unavailable (same request ids); recovery finishes the rest.
    for _ in range(100):
        codes = await asyncio.gather(*(redeem(mall, r) for r in requests))
        pending = await _pending(mall, users)
        if grpc.StatusCode.UNAVAILABLE not in codes and not pending:
            break
        await asyncio.sleep(0.2)
    assert not await _pending(mall, users)

    sold = 0
    for user in users:
        reply = await mall.ListRedemptions(pb.ListRedemptionsRequest(user_id=user))
        done = [r for r in reply.redemptions if r.status == pb.REDEMPTION_STATUS_COMPLETED]
        sold += len(done)
        current = await balance(ledger, user)
        assert (current.available, current.held) == (1000 - PRICE * len(done), 0)
    assert sold + await stock_of(mall, item_id) == STOCK
    await audit_clean(ledger)
    for host in hosts:  # the ledger's balance listener reconnects on its own, with backoff
        for _ in range(200):
            status = await health_status(f"127.0.0.1:{host.port}")
            if status == health_pb2.HealthCheckResponse.SERVING:
                break
            await asyncio.sleep(0.05)
        assert status == health_pb2.HealthCheckResponse.SERVING


async def _pending(mall: MallStub, users: list[str]) -> int:
    count = 0
    for user in users:
        with contextlib.suppress(grpc.aio.AioRpcError):
            reply = await mall.ListRedemptions(pb.ListRedemptionsRequest(user_id=user))
            count += sum(r.status == pb.REDEMPTION_STATUS_PENDING for r in reply.redemptions)
    return count
