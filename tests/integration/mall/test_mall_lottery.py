"""Lottery draws against real mall and ledger servers."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import grpc

from loyalty.common.v1 import common_pb2
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.mall.v1 import mall_pb2 as pb
from services.mall.lottery import choose, roll
from tests.support.events import events_of
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import audit_clean, balance, credit, fails, rid
from tests.support.mall_calls import MallStub


async def lottery(mall: MallStub, **fields: object) -> str:
    lottery_id = f"lucky-{uuid.uuid4().hex[:8]}"
    prizes = [
        pb.Prize(prize_id="jackpot", kind=pb.PRIZE_KIND_POINTS, weight=5, points=500, stock=3),
        pb.Prize(
            prize_id="coupon",
            kind=pb.PRIZE_KIND_COUPON,
            weight=20,
            coupon_value=common_pb2.Money(amount_minor=500, currency="CNY"),
            unlimited_stock=True,
        ),
    ]
    values: dict[str, object] = {
        "title": "Daily lucky draw",
        "points_per_draw": 10,
        "prizes": prizes,
        "no_prize_weight": 75,
        "enabled": True,
        **fields,
    }
    definition = pb.Lottery(lottery_id=lottery_id, **values)  # type: ignore[arg-type]
    await mall.UpsertLottery(pb.UpsertLotteryRequest(lottery=definition))
    return lottery_id


async def test_draws_are_charged_awarded_limited_and_verifiable(
    mall: MallStub, ledger: LedgerStub, database_url: str
) -> None:
    lottery_id = await lottery(mall)
    published = await mall.GetLottery(pb.GetLotteryRequest(lottery_id=lottery_id))
    assert published.expected_points_cost_per_draw_milli == 5 * 500 * 1000 // 100
    users = [f"player-{uuid.uuid4().hex[:8]}" for _ in range(20)]
    for player in users:
        await credit(ledger, player, 100)
    results = await asyncio.gather(
        *(
            mall.Draw(pb.DrawRequest(request_id=rid(), user_id=player, lottery_id=lottery_id))
            for player in users
            for _ in range(10)
        )
    )
    draws = [r.result for r in results]
    jackpots = [d for d in draws if d.prize_id == "jackpot"]
    assert len(jackpots) <= 3  # stock 3: never below zero
    after = (await mall.GetLottery(pb.GetLotteryRequest(lottery_id=lottery_id))).lottery
    assert after.prizes[0].stock == 3 - len(jackpots)
    for player in users:  # 10 draws of 10 points each, plus whatever points were won
        won = sum(d.points_won for d in draws if d.user_id == player)
        assert (await balance(ledger, player)).available == 100 - 100 + won
        # Each prize is announced once (lottery.won); a draw without a prize is not.
        announced = [e["data"] for e in await events_of(database_url, "mall", player)]
        prizes = sorted(
            (d.draw_id, d.prize_id) for d in draws if d.user_id == player and d.prize_id
        )
        assert sorted((a["draw_id"], a["prize_id"]) for a in announced) == prizes
    assert all(d.seed_sha256 == published.current_seed_sha256 for d in draws)
    # Every outcome is reproducible by the server now, and by anyone once the seed is out.
    checks = await asyncio.gather(
        *(
            mall.VerifyDraw(pb.VerifyDrawRequest(user_id=d.user_id, draw_id=d.draw_id))
            for d in draws[:40]
        )
    )
    assert all(c.matches and c.seed_hex == "" for c in checks)
    rotated = await mall.RotateSeed(pb.RotateSeedRequest(lottery_id=lottery_id))
    seed = bytes.fromhex(rotated.revealed.seed_hex)
    assert hashlib.sha256(seed).hexdigest() == published.current_seed_sha256
    assert rotated.current_seed_sha256 != published.current_seed_sha256
    for draw in draws:  # independent verification with the revealed seed
        assert roll(seed, draw.user_id, draw.nonce) == draw.roll
    sample = draws[0]
    check = await mall.VerifyDraw(
        pb.VerifyDrawRequest(user_id=sample.user_id, draw_id=sample.draw_id)
    )
    assert check.seed_hex == rotated.revealed.seed_hex
    table = [("jackpot", 5, True), ("coupon", 20, True)]
    assert choose(sample.roll, table, 75)[0] == sample.pick  # stock never moves the pick
    await audit_clean(ledger)


async def test_daily_limit_and_insufficient_points(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    lottery_id = await lottery(mall, daily_draws_per_user=2)
    poor = await fails(
        mall.Draw(pb.DrawRequest(request_id=rid(), user_id=user, lottery_id=lottery_id))
    )
    assert (poor.code, poor.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS")
    await credit(ledger, user, 1000)
    request = pb.DrawRequest(request_id=rid(), user_id=user, lottery_id=lottery_id)
    first = (await mall.Draw(request)).result
    assert (await mall.Draw(request)).result == first  # replay: same draw, charged once
    await mall.Draw(pb.DrawRequest(request_id=rid(), user_id=user, lottery_id=lottery_id))
    limited = await fails(
        mall.Draw(pb.DrawRequest(request_id=rid(), user_id=user, lottery_id=lottery_id))
    )
    assert limited.reason == "USER_LIMIT_REACHED"
    history = await ledger.ListTransfers(lpb.ListTransfersRequest(user_id=user))
    assert sum(1 for t in history.transfers if t.reason_code == "LOTTERY_DRAW") == 2


async def test_item_prize_is_fulfilled_like_a_redemption(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    mug = f"mug-{uuid.uuid4().hex[:8]}"
    await mall.UpsertItem(
        pb.UpsertItemRequest(
            item=pb.Item(
                item_id=mug,
                type=pb.ITEM_TYPE_PHYSICAL,
                title="Mug",
                points_price=999,
                stock=10,
                enabled=True,
            )
        )
    )
    lottery_id = await lottery(
        mall,
        prizes=[pb.Prize(prize_id="mug", kind=pb.PRIZE_KIND_ITEM, weight=1, item_id=mug, stock=1)],
        no_prize_weight=0,
    )
    await credit(ledger, user, 10)
    won = (
        await mall.Draw(
            pb.DrawRequest(
                request_id=rid(), user_id=user, lottery_id=lottery_id, shipping_address="2 Road"
            )
        )
    ).result
    assert (won.prize_id, won.redemption_id != "") == ("mug", True)
    prize = (
        await mall.GetRedemption(
            pb.GetRedemptionRequest(user_id=user, redemption_id=won.redemption_id)
        )
    ).redemption
    assert (prize.status, prize.points, prize.shipment_status, prize.shipping_address) == (
        pb.REDEMPTION_STATUS_COMPLETED,
        0,
        pb.SHIPMENT_STATUS_PENDING,
        "2 Road",
    )
    assert (await balance(ledger, user)).available == 0  # only the draw was paid
