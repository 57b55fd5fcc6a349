"""The redemption saga against real mall, rules and ledger servers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable

import asyncpg
import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from loyalty.common.v1 import common_pb2
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.mall.v1 import mall_pb2 as pb
from loyalty.rules.v1 import rules_pb2 as rpb
from services.common.errors import parse_rpc_error
from tests.support.events import events_of, types_of
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import audit_clean, balance, credit, fails, rid
from tests.support.mall_calls import MallStub, item, stock_of
from tests.support.rules_calls import RulesStub


async def outcome(call: Awaitable[pb.RedeemResponse]) -> str:
    """COMPLETED, or the reason the redemption failed."""
    try:
        reply = await call
    except grpc.aio.AioRpcError as exc:
        error = parse_rpc_error(exc)
        assert error.code == grpc.StatusCode.FAILED_PRECONDITION, error
        return error.reason
    return pb.RedemptionStatus.Name(reply.redemption.status).removeprefix("REDEMPTION_STATUS_")


def redeem(user: str, item_id: str, quantity: int = 1, **fields: str) -> pb.RedeemRequest:
    return pb.RedeemRequest(
        request_id=rid(), user_id=user, item_id=item_id, quantity=quantity, **fields
    )


async def test_coupon_redemption_charges_points_and_issues_a_code(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 500)
    coupon = await item(mall)
    done = (await mall.Redeem(redeem(user, coupon, 2))).redemption
    assert done.status == pb.REDEMPTION_STATUS_COMPLETED, done
    assert done.points == 200
    assert len(done.code) == 16 and done.code.isalnum()
    assert done.HasField("code_expire_time")
    assert (await balance(ledger, user)).available == 300
    assert await stock_of(mall, coupon) == 3
    await audit_clean(ledger)


async def test_not_enough_points_compensates_the_stock(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 50)
    coupon = await item(mall)
    request = redeem(user, coupon)
    error = await fails(mall.Redeem(request))
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_POINTS",
    )
    failed = (
        await mall.GetRedemption(
            pb.GetRedemptionRequest(user_id=user, redemption_id=error.metadata["redemption_id"])
        )
    ).redemption
    assert (failed.status, failed.failure_reason, failed.code) == (
        pb.REDEMPTION_STATUS_FAILED,
        "INSUFFICIENT_POINTS",
        "",
    )
    assert await stock_of(mall, coupon) == 5  # restored
    assert (await balance(ledger, user)).available == 50
    assert (await fails(mall.Redeem(request))).reason == "INSUFFICIENT_POINTS"  # replayed


async def test_no_oversell_under_concurrency(mall: MallStub, ledger: LedgerStub) -> None:
    coupon = await item(mall, stock=3)
    users = [f"buyer-{uuid.uuid4().hex[:8]}" for _ in range(10)]
    for buyer in users:
        await credit(ledger, buyer, 100)
    outcomes = await asyncio.gather(*(outcome(mall.Redeem(redeem(b, coupon))) for b in users))
    assert sorted(outcomes) == ["COMPLETED"] * 3 + ["OUT_OF_STOCK"] * 7
    assert await stock_of(mall, coupon) == 0
    spent = [(await balance(ledger, b)).available for b in users]
    assert sorted(spent) == [0, 0, 0] + [100] * 7
    await audit_clean(ledger)


async def test_replay_returns_the_same_redemption(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 300)
    coupon = await item(mall)
    request = redeem(user, coupon)
    first, second = await asyncio.gather(mall.Redeem(request), mall.Redeem(request))
    assert first.redemption.redemption_id == second.redemption.redemption_id
    again = await mall.Redeem(request)
    assert again.redemption.code == first.redemption.code
    assert (await balance(ledger, user)).available == 200  # charged once
    request.quantity = 2
    error = await fails(mall.Redeem(request))
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


async def test_per_user_limit(mall: MallStub, ledger: LedgerStub, user: str) -> None:
    await credit(ledger, user, 1000)
    limited = await item(mall, per_user_limit=1, limit_period=pb.LIMIT_PERIOD_DAY)
    attempts = [redeem(user, limited) for _ in range(20)]
    outcomes = await asyncio.gather(*(outcome(mall.Redeem(a)) for a in attempts))
    assert sorted(outcomes) == ["COMPLETED"] + ["USER_LIMIT_REACHED"] * 19


async def test_risk_denied_redemption(
    mall: MallStub, rules: RulesStub, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 1000)
    coupon = await item(mall)
    await rules.AddBlacklistEntry(
        rpb.AddBlacklistEntryRequest(kind=rpb.BLACKLIST_KIND_USER, value=user)
    )
    assert await outcome(mall.Redeem(redeem(user, coupon))) == "RISK_DENIED"
    assert await stock_of(mall, coupon) == 5
    assert (await balance(ledger, user)).available == 1000


async def test_cancel_refunds_the_exact_lots_and_restores_stock(
    mall: MallStub, ledger: LedgerStub, user: str, database_url: str
) -> None:
    await credit(ledger, user, 60, expires_in_days=5)
    await credit(ledger, user, 100, expires_in_days=50)
    before = await balance(ledger, user, days=60)
    coupon = await item(mall)
    done = (await mall.Redeem(redeem(user, coupon))).redemption
    assert done.status == pb.REDEMPTION_STATUS_COMPLETED
    cancelled = (
        await mall.CancelRedemption(
            pb.CancelRedemptionRequest(
                request_id=rid(), user_id=user, redemption_id=done.redemption_id
            )
        )
    ).redemption
    assert cancelled.status == pb.REDEMPTION_STATUS_CANCELLED
    assert cancelled.code == ""
    after = await balance(ledger, user, days=60)
    assert after.available == 160
    assert list(after.expiring) == list(before.expiring)  # same lots, same expiry dates
    assert await stock_of(mall, coupon) == 5
    await audit_clean(ledger)
    events = await events_of(database_url, "mall", user)
    assert types_of(events) == ["redemption.completed", "redemption.cancelled"]
    assert {e["data"]["redemption_id"] for e in events} == {done.redemption_id}
    assert events[0]["data"]["points"] == 100


async def test_physical_goods_ship_and_cannot_be_cancelled_after(
    mall: MallStub, ledger: LedgerStub, user: str, database_url: str
) -> None:
    await credit(ledger, user, 500)
    mug = await item(
        mall,
        type=pb.ITEM_TYPE_PHYSICAL,
        title="Mug",
        code_valid_days=0,
        coupon_value=common_pb2.Money(),
    )
    error = await fails(mall.Redeem(redeem(user, mug)))
    assert [v.field for v in error.violations] == ["shipping_address"]
    done = (await mall.Redeem(redeem(user, mug, shipping_address="1 Road, Shanghai"))).redemption
    assert done.shipment_status == pb.SHIPMENT_STATUS_PENDING
    shipped = (
        await mall.UpdateShipment(
            pb.UpdateShipmentRequest(
                user_id=user, redemption_id=done.redemption_id, status=pb.SHIPMENT_STATUS_SHIPPED
            )
        )
    ).redemption
    assert shipped.shipment_status == pb.SHIPMENT_STATUS_SHIPPED
    error = await fails(
        mall.CancelRedemption(
            pb.CancelRedemptionRequest(
                request_id=rid(), user_id=user, redemption_id=done.redemption_id
            )
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_CANCELLABLE")
    history = await mall.ListRedemptions(pb.ListRedemptionsRequest(user_id=user))
    assert [r.redemption_id for r in history.redemptions] == [done.redemption_id]
    events = await events_of(database_url, "mall", user)  # the refusals wrote nothing
    assert [(e["type"], e["data"].get("shipment_status")) for e in events] == [
        ("redemption.completed", "PENDING"),
        ("shipment.updated", "SHIPPED"),
    ]


@pytest.mark.parametrize(("points", "debited"), [(500, False), (50, False), (500, True)])
async def test_recovery_finishes_or_compensates_an_interrupted_saga(
    mall: MallStub,
    ledger: LedgerStub,
    database_url: str,
    user: str,
    points: int,
    debited: bool,
    spans: InMemorySpanExporter,
) -> None:
    """A crash right after the stock was reserved (or right after the debit) leaves the saga
    at STOCK_RESERVED; the recovery loop finishes it (enough points, debited once) or
    compensates it (not enough), in a trace that links to the redemption's own."""
    started_in = uuid.uuid4().hex
    await credit(ledger, user, points)
    coupon = await item(mall)
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "mall"})
    try:
        redemption_id = await conn.fetchval(
            """
            WITH taken AS (UPDATE items SET stock = stock - 1 WHERE item_id = $2)
            INSERT INTO redemptions (user_id, request_id, payload_sha256, item_id, item_type,
                                     quantity, points, step, stock_reserved, updated_at,
                                     traceparent)
            VALUES ($1, 'crashed', '\\x00', $2, 'ITEM_TYPE_COUPON', 1, 100, 'STOCK_RESERVED',
                    true, now() - interval '1 minute', $3)
            RETURNING redemption_id
            """,
            user,
            coupon,
            f"00-{started_in}-{'3' * 16}-01",
        )
    finally:
        await conn.close()
    if debited:  # the crash came after the ledger applied the saga's debit
        await ledger.Debit(
            lpb.DebitRequest(
                request_id=f"mall:{redemption_id}:debit",
                user_id=user,
                amount=100,
                reason_code="REDEEM",
                metadata={"redemption_id": str(redemption_id), "item_id": coupon},
            )
        )
    for _ in range(100):
        found = (
            await mall.GetRedemption(
                pb.GetRedemptionRequest(user_id=user, redemption_id=str(redemption_id))
            )
        ).redemption
        if found.status != pb.REDEMPTION_STATUS_PENDING:
            break
        await asyncio.sleep(0.1)
    [ended] = await events_of(database_url, "mall", user)
    if points >= 100:
        assert ended["type"] == "redemption.completed"
        assert found.status == pb.REDEMPTION_STATUS_COMPLETED
        assert found.code  # fulfilled with its code in the same step
        assert (await balance(ledger, user)).available == points - 100
        assert await stock_of(mall, coupon) == 4
    else:
        assert (ended["type"], ended["data"]["failure_reason"]) == (
            "redemption.failed",
            "INSUFFICIENT_POINTS",
        )
        assert (found.status, found.failure_reason) == (
            pb.REDEMPTION_STATUS_FAILED,
            "INSUFFICIENT_POINTS",
        )
        assert (await balance(ledger, user)).available == points
        assert await stock_of(mall, coupon) == 5
    await audit_clean(ledger)
    recoveries = [s for s in spans.get_finished_spans() if s.name == "mall.recover_sagas"]
    linked = {f"{link.context.trace_id:032x}" for r in recoveries for link in r.links}
    assert started_in in linked


async def test_points_for_five_of_ten_concurrent_redemptions(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 500)
    coupon = await item(mall, stock=100)
    outcomes = await asyncio.gather(
        *(outcome(mall.Redeem(redeem(user, coupon))) for _ in range(10))
    )
    assert sorted(outcomes) == ["COMPLETED"] * 5 + ["INSUFFICIENT_POINTS"] * 5
    assert (await balance(ledger, user)).available == 0
    assert await stock_of(mall, coupon) == 95
    await audit_clean(ledger)


async def test_200_concurrent_redemptions_of_10_in_stock(
    mall: MallStub, ledger: LedgerStub
) -> None:
    coupon = await item(mall, stock=10, points_price=10)
    buyers = [f"rush-{uuid.uuid4().hex[:8]}" for _ in range(200)]
    await asyncio.gather(*(credit(ledger, b, 10) for b in buyers))
    outcomes = await asyncio.gather(*(outcome(mall.Redeem(redeem(b, coupon))) for b in buyers))
    assert sorted(outcomes) == ["COMPLETED"] * 10 + ["OUT_OF_STOCK"] * 190
    assert await stock_of(mall, coupon) == 0
    await audit_clean(ledger)


async def test_coupon_is_validated_used_once_and_blocks_cancel(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 100)
    coupon = await item(mall, coupon_min_spend=common_pb2.Money(amount_minor=5000, currency="CNY"))
    done = (await mall.Redeem(redeem(user, coupon))).redemption
    order = common_pb2.Money(amount_minor=8000, currency="CNY")
    small = common_pb2.Money(amount_minor=4000, currency="CNY")
    checked = await mall.ValidateCoupon(
        pb.ValidateCouponRequest(user_id=user, code=done.code, order_amount=order)
    )
    assert (checked.valid, checked.discount.amount_minor) == (True, 2000)
    below = await mall.ValidateCoupon(
        pb.ValidateCouponRequest(user_id=user, code=done.code, order_amount=small)
    )
    assert (below.valid, below.reason) == (False, "BELOW_MIN_SPEND")
    stranger = await fails(
        mall.ValidateCoupon(
            pb.ValidateCouponRequest(user_id=f"{user}-x", code=done.code, order_amount=order)
        )
    )
    assert stranger.reason == "COUPON_NOT_FOUND"
    use = pb.UseCouponRequest(
        request_id=rid(), user_id=user, code=done.code, order_id="o-1", order_amount=order
    )
    used = await mall.UseCoupon(use)
    assert used.coupon.state == pb.COUPON_STATE_USED
    assert (await mall.UseCoupon(use)).coupon.used_order_id == "o-1"  # replay
    use.order_id = "o-2"
    again = await fails(mall.UseCoupon(use))
    assert (again.code, again.reason) == (grpc.StatusCode.ALREADY_EXISTS, "COUPON_ALREADY_USED")
    error = await fails(
        mall.CancelRedemption(
            pb.CancelRedemptionRequest(
                request_id=rid(), user_id=user, redemption_id=done.redemption_id
            )
        )
    )
    assert error.reason == "NOT_CANCELLABLE"  # a used coupon cannot be refunded


async def test_points_plus_cash_and_tier_eligibility(
    mall: MallStub, ledger: LedgerStub, user: str
) -> None:
    await credit(ledger, user, 500)
    speaker = await item(
        mall,
        type=pb.ITEM_TYPE_POINTS_PLUS_CASH,
        title="Speaker",
        coupon_value=common_pb2.Money(),
        code_valid_days=0,
        cash_price=common_pb2.Money(amount_minor=990, currency="CNY"),
    )
    done = (await mall.Redeem(redeem(user, speaker, 2, shipping_address="1 Road"))).redemption
    assert done.status == pb.REDEMPTION_STATUS_COMPLETED
    assert (done.points, done.cash_due.amount_minor, done.cash_due.currency) == (200, 1980, "CNY")
    assert done.shipment_status == pb.SHIPMENT_STATUS_PENDING
    vip = await item(mall, eligible_tier_ids=["gold"])
    assert await outcome(mall.Redeem(redeem(user, vip))) == "TIER_NOT_ELIGIBLE"
    assert await stock_of(mall, vip) == 5
    error = await fails(
        mall.UpsertItem(
            pb.UpsertItemRequest(
                item=pb.Item(
                    item_id="bad-ppc", type=pb.ITEM_TYPE_POINTS_PLUS_CASH, title="x", points_price=1
                )
            )
        )
    )
    assert "item.cash_price" in {v.field for v in error.violations}


async def test_operators_list_every_members_redemptions_by_status(
    mall: MallStub, ledger: LedgerStub
) -> None:
    coupon = await item(mall, stock=10)
    rich, poor = (f"list-{uuid.uuid4().hex[:8]}" for _ in range(2))
    await credit(ledger, rich, 100)
    done = (await mall.Redeem(redeem(rich, coupon))).redemption
    await fails(mall.Redeem(redeem(poor, coupon)))  # no points: the saga fails
    newest = await mall.ListRedemptions(pb.ListRedemptionsRequest(all_members=True, page_size=2))
    assert [(r.user_id, r.saga_step) for r in newest.redemptions] == [
        (poor, "FAILED"),
        (rich, "COMPLETED"),
    ]
    failed = await mall.ListRedemptions(
        pb.ListRedemptionsRequest(
            all_members=True, status=pb.REDEMPTION_STATUS_FAILED, page_size=100
        )
    )
    assert poor in {r.user_id for r in failed.redemptions}
    assert done.redemption_id not in {r.redemption_id for r in failed.redemptions}
    refused = await fails(
        mall.ListRedemptions(pb.ListRedemptionsRequest(all_members=True, user_id=rich))
    )
    assert [v.field for v in refused.violations] == ["user_id"]
