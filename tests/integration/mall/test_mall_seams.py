"""The mall's seams under concurrency and refusal: every answer is a clean business error,
points are conserved, and every spend path asks risk."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable
from typing import Any

import grpc
import pytest

from loyalty.mall.v1 import mall_pb2 as pb
from loyalty.rules.v1 import rules_pb2 as rpb
from loyalty.rules.v1 import rules_pb2_grpc
from services.common.errors import parse_rpc_error
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import audit_clean, balance, credit, fails, rid
from tests.support.mall_calls import MallStub, cny

OK = (grpc.StatusCode.OK, "")
CLEAN = {
    grpc.StatusCode.OK,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.NOT_FOUND,
}


async def outcome(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        error = parse_rpc_error(exc)
        return error.code, error.reason
    return grpc.StatusCode.OK, ""


def apply(user: str, order: str, points: int, request_id: str = "") -> pb.ApplyDeductionRequest:
    return pb.ApplyDeductionRequest(
        request_id=request_id or rid(),
        user_id=user,
        order_id=order,
        order_amount=cny(100_000),
        points=points,
    )


async def test_concurrent_applies_on_one_order_hold_once(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 50_000)
    results = await asyncio.gather(
        *(outcome(mall.ApplyDeduction(apply(user, "o-race", 1000))) for _ in range(20))
    )
    counts = Counter(results)
    assert counts == {
        (grpc.StatusCode.OK, ""): 1,
        (grpc.StatusCode.ALREADY_EXISTS, "DEDUCTION_EXISTS"): 19,
    }
    current = await balance(ledger, user)
    assert (current.available, current.held) == (49_000, 1000)
    # The same request sent 20 times at once is one deduction, answered the same each time.
    same = apply(user, "o-same", 2000)
    replies = await asyncio.gather(*(mall.ApplyDeduction(same) for _ in range(20)))
    assert len({r.deduction.SerializeToString() for r in replies}) == 1
    assert (await balance(ledger, user)).held == 3000
    await audit_clean(ledger)


async def test_confirm_racing_cancel_settles_one_way(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 10_000)
    await mall.ApplyDeduction(apply(user, "o-cc", 3000))
    calls = [
        mall.ConfirmDeduction(
            pb.ConfirmDeductionRequest(request_id=rid(), user_id=user, order_id="o-cc")
        )
        for _ in range(5)
    ] + [
        mall.CancelDeduction(
            pb.CancelDeductionRequest(request_id=rid(), user_id=user, order_id="o-cc")
        )
        for _ in range(5)
    ]
    results = await asyncio.gather(*(outcome(c) for c in calls))
    assert {code for code, _ in results} <= CLEAN, results
    confirms, cancels = results[:5], results[5:]
    current = await balance(ledger, user)
    refused = grpc.StatusCode.FAILED_PRECONDITION
    if OK in confirms:
        assert all(r == OK for r in confirms), confirms
        assert all(r in {(refused, "DEDUCTION_CONFIRMED"), OK} for r in cancels), cancels
        assert (current.available, current.held, current.lifetime_spent) == (7000, 0, 3000)
    else:
        assert all(r == (refused, "DEDUCTION_CANCELLED") for r in confirms), confirms
        assert all(r == OK for r in cancels), cancels
        assert (current.available, current.held, current.lifetime_spent) == (10_000, 0, 0)
    await audit_clean(ledger)


async def test_concurrent_partial_refunds_add_up_exactly(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 10_000)
    await mall.ApplyDeduction(apply(user, "o-rf", 5000))
    await mall.ConfirmDeduction(
        pb.ConfirmDeductionRequest(request_id=rid(), user_id=user, order_id="o-rf")
    )
    refunds = [
        pb.RefundDeductionRequest(
            request_id=rid(), user_id=user, order_id="o-rf", refund_amount=cny(30_000)
        )
        for _ in range(10)
    ]
    results = await asyncio.gather(*(outcome(mall.RefundDeduction(r)) for r in refunds))
    assert Counter(results) == {
        (grpc.StatusCode.OK, ""): 3,
        (grpc.StatusCode.FAILED_PRECONDITION, "REFUND_EXCEEDS_ORDER"): 7,
    }
    assert (await balance(ledger, user)).available == 5000 + 3 * 1500
    # A refund's request id replays only the same amount.
    done = next(r for r, (code, _) in zip(refunds, results, strict=True) if code.name == "OK")
    again = await mall.RefundDeduction(done)
    assert again.refunded_points == 1500
    reused = pb.RefundDeductionRequest()
    reused.CopyFrom(done)
    reused.refund_amount.amount_minor = 100
    error = await fails(mall.RefundDeduction(reused))
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    await audit_clean(ledger)


async def test_a_refused_apply_can_be_retried_with_another_request(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 1000)
    first = apply(user, "o-retry", 1000)
    await mall.ApplyDeduction(first)
    await mall.CancelDeduction(
        pb.CancelDeductionRequest(request_id=rid(), user_id=user, order_id="o-retry")
    )
    # Cancelled is final for the order; a different payload under the same key is refused.
    error = await fails(mall.ApplyDeduction(apply(user, "o-retry", 1000)))
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "DEDUCTION_EXISTS")
    changed = pb.ApplyDeductionRequest()
    changed.CopyFrom(first)
    changed.points = 900
    error = await fails(mall.ApplyDeduction(changed))
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


@pytest.fixture
async def blacklisted(rules: rules_pb2_grpc.RulesServiceAsyncStub, user: str) -> str:
    await rules.AddBlacklistEntry(
        rpb.AddBlacklistEntryRequest(kind=rpb.BLACKLIST_KIND_USER, value=user, reason="abuse")
    )
    return user


async def test_risk_is_asked_at_checkout_and_before_a_draw(
    mall: MallStub, ledger: LedgerStub, blacklisted: str
) -> None:
    user = blacklisted
    await credit(ledger, user, 10_000)
    error = await fails(mall.ApplyDeduction(apply(user, "o-risk", 1000)))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RISK_DENIED")
    await mall.UpsertLottery(pb.UpsertLotteryRequest(lottery=lottery("risk-lottery")))
    error = await fails(
        mall.Draw(pb.DrawRequest(request_id=rid(), user_id=user, lottery_id="risk-lottery"))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RISK_DENIED")
    current = await balance(ledger, user)
    assert (current.available, current.held, current.lifetime_spent) == (10_000, 0, 0)


def lottery(lottery_id: str, **prize: Any) -> pb.Lottery:
    return pb.Lottery(
        lottery_id=lottery_id,
        title="Seams",
        points_per_draw=10,
        enabled=True,
        prizes=[
            pb.Prize(
                prize_id="p",
                kind=pb.PRIZE_KIND_POINTS,
                weight=1,
                points=5,
                unlimited_stock=True,
                **prize,
            )
        ],
    )


async def test_draw_keys_are_fingerprinted_and_concurrent_duplicates_draw_once(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 1000)
    for lottery_id in ("seam-a", "seam-b"):
        await mall.UpsertLottery(pb.UpsertLotteryRequest(lottery=lottery(lottery_id)))
    request = pb.DrawRequest(request_id=rid(), user_id=user, lottery_id="seam-a")
    results = await asyncio.gather(*(mall.Draw(request) for _ in range(10)))
    assert len({r.result.draw_id for r in results}) == 1
    assert (await balance(ledger, user)).available == 1000 - 10 + 5
    other = pb.DrawRequest(request_id=request.request_id, user_id=user, lottery_id="seam-b")
    error = await fails(mall.Draw(other))
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    await audit_clean(ledger)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"weight": 2**63 - 1}, "lottery.prizes[0].weight"),
        ({"points": 10**13}, "lottery.prizes[0].points"),
    ],
)
async def test_lotteries_the_ledger_could_not_pay_are_refused_up_front(
    mall: MallStub, change: dict[str, int], field: str
) -> None:
    definition = lottery("seam-bad")
    for name, value in change.items():
        setattr(definition.prizes[0], name, value)
    error = await fails(mall.UpsertLottery(pb.UpsertLotteryRequest(lottery=definition)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in error.violations]


async def test_one_key_cannot_confirm_or_cancel_two_things(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 10_000)
    for order in ("o-k1", "o-k2"):
        await mall.ApplyDeduction(apply(user, order, 1000))
    key = rid()
    first = await mall.ConfirmDeduction(
        pb.ConfirmDeductionRequest(request_id=key, user_id=user, order_id="o-k1")
    )
    replay = await mall.ConfirmDeduction(
        pb.ConfirmDeductionRequest(request_id=key, user_id=user, order_id="o-k1")
    )
    assert replay == first
    error = await fails(
        mall.CancelDeduction(
            pb.CancelDeductionRequest(request_id=key, user_id=user, order_id="o-k2")
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    error = await fails(
        mall.ConfirmDeduction(
            pb.ConfirmDeductionRequest(request_id=key, user_id=user, order_id="o-k2")
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    current = await balance(ledger, user)
    assert (current.available, current.held, current.lifetime_spent) == (8000, 1000, 1000)
    # A refusal is recorded too: the same request answers the same error.
    cancel_confirmed = pb.CancelDeductionRequest(request_id=rid(), user_id=user, order_id="o-k1")
    for _ in range(2):
        error = await fails(mall.CancelDeduction(cancel_confirmed))
        assert error.reason == "DEDUCTION_CONFIRMED"
