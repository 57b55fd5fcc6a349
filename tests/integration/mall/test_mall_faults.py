"""Fault injection: the ledger is down between a redemption's hold and its capture. The saga
waits (PENDING), and once the ledger is back the recovery loop completes it: stock and points
stay consistent and nothing applies twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc

from loyalty.common.v1 import common_pb2
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.mall.v1 import mall_pb2 as pb
from loyalty.mall.v1 import mall_pb2_grpc
from services.common.timestamps import to_timestamp
from services.ledger.server import SPEC as LEDGER
from services.mall.server import SPEC as MALL
from services.rules.server import SPEC as RULES
from tests.support.hosts import free_port, running
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import audit_clean, balance, credit, fails
from tests.support.mall_calls import stock_of


async def test_ledger_down_between_hold_and_capture(private_database: str, user: str) -> None:
    database_url = private_database
    ledger_port = free_port()  # the mall's ledger: down until we start it below
    env = {
        "LEDGER_ADDR": f"127.0.0.1:{ledger_port}",
        "RULES_ADDR": f"127.0.0.1:{free_port()}",  # not needed past the reservation step
        "MALL_RECOVERY_SECONDS": "0.2",
        "MALL_RECOVERY_AFTER_SECONDS": "0.3",
    }
    async with (
        running(LEDGER, database_url) as setup_ledger,
        running(MALL, database_url, env) as mall_host,
        grpc.aio.insecure_channel(f"127.0.0.1:{setup_ledger.port}") as lchannel,
    ):
        ledger: LedgerStub = ledger_pb2_grpc.LedgerServiceStub(lchannel)
        await credit(ledger, user, 300)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{mall_host.port}") as channel:
            mall = mall_pb2_grpc.MallServiceStub(channel)
            item_id = f"fault-{uuid.uuid4().hex[:8]}"
            await mall.UpsertItem(
                pb.UpsertItemRequest(
                    item=pb.Item(
                        item_id=item_id,
                        type=pb.ITEM_TYPE_COUPON,
                        title="Coupon",
                        points_price=100,
                        stock=5,
                        enabled=True,
                        coupon_value=common_pb2.Money(amount_minor=500, currency="CNY"),
                    )
                )
            )
            # The saga got as far as FULFILLED: stock reserved, hold placed, code issued...
            conn = await asyncpg.connect(database_url, server_settings={"search_path": "mall"})
            try:
                redemption_id = await conn.fetchval(
                    """
                    WITH taken AS (UPDATE items SET stock = stock - 1 WHERE item_id = $2)
                    INSERT INTO redemptions (user_id, request_id, payload_sha256, item_id,
                        item_type, quantity, points, step, stock_reserved, code)
                    VALUES ($1, 'interrupted', '\\x00', $2, 'ITEM_TYPE_COUPON', 1, 100,
                            'FULFILLED', true, $3)
                    RETURNING redemption_id
                    """,
                    user,
                    item_id,
                    uuid.uuid4().hex[:16].upper(),
                )
                hold = await ledger.Hold(
                    lpb.HoldRequest(
                        request_id=f"mall:{redemption_id}:hold",
                        user_id=user,
                        amount=100,
                        deadline_time=to_timestamp(datetime.now(UTC) + timedelta(minutes=10)),
                    )
                )
                await conn.execute(
                    "UPDATE redemptions SET hold_id = $3, updated_at = now() - interval '1 min' "
                    "WHERE user_id = $1 AND redemption_id = $2",
                    user,
                    redemption_id,
                    hold.hold.hold_id,
                )
            finally:
                await conn.close()
            ask = pb.GetRedemptionRequest(user_id=user, redemption_id=str(redemption_id))
            await asyncio.sleep(1.0)  # ...and the ledger is down: recovery cannot capture
            assert (await mall.GetRedemption(ask)).redemption.status == (
                pb.REDEMPTION_STATUS_PENDING
            )
            assert (await balance(ledger, user)).held == 100
            async with running(LEDGER, database_url, {"LEDGER_PORT": str(ledger_port)}):
                for _ in range(100):
                    found = (await mall.GetRedemption(ask)).redemption
                    if found.status != pb.REDEMPTION_STATUS_PENDING:
                        break
                    await asyncio.sleep(0.1)
            assert found.status == pb.REDEMPTION_STATUS_COMPLETED
            current = await balance(ledger, user)
            assert (current.available, current.held, current.lifetime_spent) == (200, 0, 100)
            assert await stock_of(mall, item_id) == 4
        await audit_clean(ledger)


async def test_draw_interrupted_by_a_ledger_outage_is_settled_later(
    private_database: str, user: str
) -> None:
    ledger_port, rules_port = free_port(), free_port()
    env = {
        "LEDGER_ADDR": f"127.0.0.1:{ledger_port}",
        "RULES_ADDR": f"127.0.0.1:{rules_port}",
        "RULES_PORT": str(rules_port),
        "MALL_RECOVERY_SECONDS": "0.2",
        "MALL_RECOVERY_AFTER_SECONDS": "0.3",
    }
    async with (
        running(LEDGER, private_database) as setup_ledger,
        running(RULES, private_database, env),  # the draw's risk check; the ledger stays down
        running(MALL, private_database, env) as mall_host,
        grpc.aio.insecure_channel(f"127.0.0.1:{setup_ledger.port}") as lchannel,
        grpc.aio.insecure_channel(f"127.0.0.1:{mall_host.port}") as channel,
    ):
        ledger: LedgerStub = ledger_pb2_grpc.LedgerServiceStub(lchannel)
        mall = mall_pb2_grpc.MallServiceStub(channel)
        await credit(ledger, user, 100)
        await mall.UpsertLottery(
            pb.UpsertLotteryRequest(
                lottery=pb.Lottery(
                    lottery_id="always",
                    title="Always wins",
                    points_per_draw=30,
                    enabled=True,
                    prizes=[
                        pb.Prize(
                            prize_id="ten",
                            kind=pb.PRIZE_KIND_POINTS,
                            weight=1,
                            points=10,
                            unlimited_stock=True,
                        )
                    ],
                )
            )
        )
        error = await fails(
            mall.Draw(pb.DrawRequest(request_id="d1", user_id=user, lottery_id="always"))
        )
        assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "DEPENDENCY_UNAVAILABLE")
        assert (await balance(ledger, user)).available == 100  # not charged yet
        async with running(LEDGER, private_database, {"LEDGER_PORT": str(ledger_port)}):
            for _ in range(100):
                if (await balance(ledger, user)).available != 100:
                    break
                await asyncio.sleep(0.1)
            replay = await mall.Draw(
                pb.DrawRequest(request_id="d1", user_id=user, lottery_id="always")
            )
        assert replay.result.prize_id == "ten"
        assert (await balance(ledger, user)).available == 100 - 30 + 10  # charged once, paid
        await audit_clean(ledger)
