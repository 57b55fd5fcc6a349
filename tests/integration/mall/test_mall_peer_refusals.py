"""The mall meets a ledger that refuses for good: each refusal settles the business outcome
(stock back, hold released, cost refunded), answers a clean error, and is never retried
forever. The ledger is real; a proxy in front of it refuses the chosen method."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest

from loyalty.common.v1 import common_pb2
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.mall.v1 import mall_pb2 as pb
from loyalty.mall.v1 import mall_pb2_grpc
from services.common.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound
from services.common.server import ServiceHost
from services.ledger.server import SPEC as LEDGER
from services.mall.server import SPEC as MALL
from services.rules.server import SPEC as RULES
from tests.support.faulty_peer import FaultyPeer
from tests.support.hosts import running
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import audit_clean, balance, credit, fails, rid
from tests.support.mall_calls import MallStub, cny, item, stock_of


@dataclass
class Suite:
    mall: MallStub
    ledger: LedgerStub
    proxy: FaultyPeer
    mall_host: ServiceHost


@pytest.fixture
async def suite(private_database: str) -> AsyncIterator[Suite]:
    async with running(LEDGER, private_database) as ledger_host:
        real = f"127.0.0.1:{ledger_host.port}"
        proxy = FaultyPeer(real, "ledger")
        address = await proxy.start()
        try:
            async with running(RULES, private_database, {"LEDGER_ADDR": real}) as rules_host:
                env = {
                    "LEDGER_ADDR": address,
                    "RULES_ADDR": f"127.0.0.1:{rules_host.port}",
                    "MALL_RECOVERY_SECONDS": "0.2",
                    "MALL_RECOVERY_AFTER_SECONDS": "0.5",
                }
                async with (
                    running(MALL, private_database, env) as mall_host,
                    grpc.aio.insecure_channel(f"127.0.0.1:{mall_host.port}") as mchannel,
                    grpc.aio.insecure_channel(real) as lchannel,
                ):
                    yield Suite(
                        mall_pb2_grpc.MallServiceStub(mchannel),
                        ledger_pb2_grpc.LedgerServiceStub(lchannel),
                        proxy,
                        mall_host,
                    )
        finally:
            await proxy.stop()


async def spendable(mall: MallStub, user: str, shipped: bool) -> tuple[str, pb.RedeemRequest]:
    """Three in stock of a shipped mug or of a coupon, and the user's order of one."""
    if shipped:
        item_id = await item(
            mall,
            stock=3,
            type=pb.ITEM_TYPE_PHYSICAL,
            title="Mug",
            code_valid_days=0,
            coupon_value=common_pb2.Money(),
        )
    else:
        item_id = await item(mall, stock=3)
    order = pb.RedeemRequest(
        request_id=rid(),
        user_id=user,
        item_id=item_id,
        quantity=1,
        shipping_address="1 Road, Shanghai" if shipped else "",
    )
    return item_id, order


def invalid() -> DomainError:
    return InvalidArgument.fields([])


@pytest.mark.parametrize(
    ("refusal", "reason"),
    [
        (invalid, "INVALID_ARGUMENT"),
        (lambda: FailedPrecondition("IDEMPOTENCY_KEY_REUSED", "reused"), "IDEMPOTENCY_KEY_REUSED"),
        (lambda: FailedPrecondition("INSUFFICIENT_POINTS", "no"), "INSUFFICIENT_POINTS"),
    ],
)
@pytest.mark.parametrize("method", ["Hold", "Debit"])
async def test_a_refused_spend_fails_the_redemption_and_restores_stock(
    suite: Suite, user: str, refusal: Callable[[], DomainError], reason: str, method: str
) -> None:
    """A shipped item spends through a hold; an item fulfilled on the spot, one debit."""
    await credit(suite.ledger, user, 1000)
    item_id, order = await spendable(suite.mall, user, shipped=method == "Hold")
    suite.proxy.faults[method] = refusal()
    error = await fails(suite.mall.Redeem(order))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, reason)
    assert await stock_of(suite.mall, item_id) == 3
    current = await balance(suite.ledger, user)
    assert (current.available, current.held) == (1000, 0)


@pytest.mark.parametrize("reason", ["HOLD_EXPIRED", "HOLD_ALREADY_RELEASED", "HOLD_NOT_FOUND"])
async def test_a_refused_capture_releases_the_hold_and_fails_the_redemption(
    suite: Suite, user: str, reason: str
) -> None:
    await credit(suite.ledger, user, 1000)
    item_id, order = await spendable(suite.mall, user, shipped=True)
    suite.proxy.faults["CaptureHold"] = (
        NotFound(reason, "gone") if reason == "HOLD_NOT_FOUND" else FailedPrecondition(reason, "x")
    )
    error = await fails(suite.mall.Redeem(order))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "HOLD_EXPIRED")
    assert await stock_of(suite.mall, item_id) == 3
    current = await balance(suite.ledger, user)
    assert (current.available, current.held) == (1000, 0)  # the real hold was released
    await audit_clean(suite.ledger)


def lottery() -> pb.Lottery:
    return pb.Lottery(
        lottery_id="refusals",
        title="Always wins",
        points_per_draw=30,
        enabled=True,
        prizes=[pb.Prize(prize_id="p", kind=pb.PRIZE_KIND_POINTS, weight=1, points=10, stock=5)],
    )


async def test_a_refused_prize_refunds_the_draw_and_leaves_a_dead_letter(
    suite: Suite, user: str
) -> None:
    await credit(suite.ledger, user, 100)
    await suite.mall.UpsertLottery(pb.UpsertLotteryRequest(lottery=lottery()))
    suite.proxy.faults["Credit"] = invalid()
    request = pb.DrawRequest(request_id=rid(), user_id=user, lottery_id="refusals")
    error = await fails(suite.mall.Draw(request))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PRIZE_NOT_PAYABLE")
    current = await balance(suite.ledger, user)
    assert (current.available, current.lifetime_spent) == (100, 0)  # the cost came back
    replay = await fails(suite.mall.Draw(request))
    assert replay.reason == "PRIZE_NOT_PAYABLE"
    stock = await suite.mall.GetLottery(pb.GetLotteryRequest(lottery_id="refusals"))
    assert stock.lottery.prizes[0].stock == 5  # the prize went back
    letters = await suite.mall.ListDeadLetters(
        pb.ListDeadLettersRequest(status=common_pb2.DEAD_LETTER_STATUS_OPEN)
    )
    [letter] = [d for d in letters.dead_letters if d.user_id == user]
    assert (letter.kind, letter.reason) == ("LOTTERY_PRIZE", "INVALID_ARGUMENT")
    retry = await fails(
        suite.mall.RetryDeadLetter(
            pb.RetryDeadLetterRequest(user_id=user, letter_id=letter.letter_id)
        )
    )
    assert retry.reason == "DEAD_LETTER_NOT_RETRYABLE"
    await audit_clean(suite.ledger)


async def test_a_refused_charge_fails_the_draw_without_cost(suite: Suite, user: str) -> None:
    await credit(suite.ledger, user, 100)
    await suite.mall.UpsertLottery(pb.UpsertLotteryRequest(lottery=lottery()))
    suite.proxy.faults["Debit"] = invalid()
    error = await fails(
        suite.mall.Draw(pb.DrawRequest(request_id=rid(), user_id=user, lottery_id="refusals"))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_ARGUMENT")
    assert (await balance(suite.ledger, user)).available == 100
    await suite.mall_host.job("draw-recovery").passes.more(3)  # a failed draw is final
    assert (await balance(suite.ledger, user)).available == 100


async def test_checkout_refusals_are_business_errors(suite: Suite, user: str) -> None:
    await credit(suite.ledger, user, 5000)
    apply = pb.ApplyDeductionRequest(
        request_id=rid(), user_id=user, order_id="o-1", order_amount=cny(100_000), points=1000
    )
    suite.proxy.faults["Hold"] = invalid()
    error = await fails(suite.mall.ApplyDeduction(apply))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_ARGUMENT")
    del suite.proxy.faults["Hold"]
    retried = pb.ApplyDeductionRequest()
    retried.CopyFrom(apply)
    retried.request_id = rid()  # a failed claim can be taken over by another request
    applied = await suite.mall.ApplyDeduction(retried)
    assert applied.deduction.status == pb.DEDUCTION_STATUS_APPLIED
    suite.proxy.faults["CaptureHold"] = FailedPrecondition("HOLD_EXPIRED", "late")
    error = await fails(
        suite.mall.ConfirmDeduction(
            pb.ConfirmDeductionRequest(request_id=rid(), user_id=user, order_id="o-1")
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DEDUCTION_EXPIRED")
