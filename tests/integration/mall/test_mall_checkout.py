"""Points-as-cash at checkout against real mall and ledger servers."""

from __future__ import annotations

import grpc

from loyalty.common.v1 import common_pb2
from loyalty.mall.v1 import mall_pb2 as pb
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import audit_clean, balance, credit, fails, rid
from tests.support.mall_calls import MallStub, cny


async def test_quote_apply_confirm_and_partial_refund(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    first = await credit(ledger, user, 4000, expires_in_days=10)
    await credit(ledger, user, 6000, expires_in_days=100)
    quote = await mall.QuoteDeduction(
        pb.QuoteDeductionRequest(user_id=user, order_amount=cny(12345))
    )
    assert (quote.max_points, quote.covered.amount_minor, quote.available_points) == (
        6100,
        6100,
        10000,
    )
    too_much = await fails(
        mall.ApplyDeduction(
            pb.ApplyDeductionRequest(
                request_id=rid(), user_id=user, order_id="o-1", order_amount=cny(12345), points=6200
            )
        )
    )
    assert (too_much.code, too_much.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "DEDUCTION_EXCEEDS_LIMIT",
    )
    applied = (
        await mall.ApplyDeduction(
            pb.ApplyDeductionRequest(
                request_id=rid(), user_id=user, order_id="o-1", order_amount=cny(12345), points=6100
            )
        )
    ).deduction
    assert applied.status == pb.DEDUCTION_STATUS_APPLIED
    current = await balance(ledger, user)
    assert (current.available, current.held) == (3900, 6100)
    confirmed = (
        await mall.ConfirmDeduction(
            pb.ConfirmDeductionRequest(request_id=rid(), user_id=user, order_id="o-1")
        )
    ).deduction
    assert confirmed.status == pb.DEDUCTION_STATUS_CONFIRMED
    assert (await balance(ledger, user)).available == 3900
    refund_id = rid()
    refund = pb.RefundDeductionRequest(
        request_id=refund_id, user_id=user, order_id="o-1", refund_amount=cny(4000)
    )
    refunded = await mall.RefundDeduction(refund)
    assert refunded.refunded_points == 1976  # floor(6100 × 4000 / 12345)
    assert (await mall.RefundDeduction(refund)).refunded_points == 1976  # replay
    assert (await balance(ledger, user)).available == 3900 + 1976
    rest = await mall.RefundDeduction(
        pb.RefundDeductionRequest(
            request_id=rid(), user_id=user, order_id="o-1", refund_amount=cny(8345)
        )
    )
    assert rest.deduction.refunded_points == 6100  # the whole order refunded: every point
    final = await balance(ledger, user, days=200)
    assert final.available == 10000
    assert [e.amount for e in final.expiring] == [4000, 6000]  # back to the exact lots
    assert first.lot_id
    await audit_clean(ledger)


async def test_payment_failure_cancels_and_returns_the_points(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 500)
    await mall.ApplyDeduction(
        pb.ApplyDeductionRequest(
            request_id=rid(), user_id=user, order_id="o-2", order_amount=cny(5000), points=500
        )
    )
    assert (await balance(ledger, user)).held == 500
    cancelled = (
        await mall.CancelDeduction(
            pb.CancelDeductionRequest(request_id=rid(), user_id=user, order_id="o-2")
        )
    ).deduction
    assert cancelled.status == pb.DEDUCTION_STATUS_CANCELLED
    current = await balance(ledger, user)
    assert (current.available, current.held) == (500, 0)
    error = await fails(
        mall.ConfirmDeduction(
            pb.ConfirmDeductionRequest(request_id=rid(), user_id=user, order_id="o-2")
        )
    )
    assert error.reason == "DEDUCTION_CANCELLED"


async def test_one_key_names_one_deduction(mall: MallStub, ledger: LedgerStub, user: str) -> None:
    """The same key sent with another order is refused, and holds nothing for it."""
    await credit(ledger, user, 1000)
    key = rid()
    first = pb.ApplyDeductionRequest(
        request_id=key, user_id=user, order_id="order-A", order_amount=cny(5000), points=100
    )
    applied = (await mall.ApplyDeduction(first)).deduction
    assert (await mall.ApplyDeduction(first)).deduction == applied  # a retry replays
    other = await fails(
        mall.ApplyDeduction(
            pb.ApplyDeductionRequest(
                request_id=key, user_id=user, order_id="order-B", order_amount=cny(5000), points=100
            )
        )
    )
    assert (other.code, other.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    await mall.ConfirmDeduction(
        pb.ConfirmDeductionRequest(request_id=rid(), user_id=user, order_id="order-A")
    )
    current = await balance(ledger, user)
    assert (current.available, current.held) == (900, 0)
    await audit_clean(ledger)


async def test_bad_checkout_input(mall: MallStub, user: str) -> None:
    error = await fails(
        mall.QuoteDeduction(
            pb.QuoteDeductionRequest(
                user_id=user, order_amount=common_pb2.Money(amount_minor=-1, currency="USD")
            )
        )
    )
    assert {v.field for v in error.violations} == {
        "order_amount.amount_minor",
        "order_amount.currency",
    }
