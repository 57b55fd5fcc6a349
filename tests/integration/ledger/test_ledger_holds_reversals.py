"""Holds, reversals, refunds and expiry."""

import asyncio

import grpc

from loyalty.ledger.v1 import ledger_pb2 as pb
from services.common.timestamps import to_timestamp
from tests.support.ledger_calls import (
    Stub,
    audit_clean,
    balance,
    credit,
    debit,
    fails,
    in_seconds,
    rid,
)


async def hold(ledger: Stub, user: str, amount: int, seconds: float = 60) -> pb.HoldResponse:
    return await ledger.Hold(
        pb.HoldRequest(
            request_id=rid(),
            user_id=user,
            amount=amount,
            deadline_time=to_timestamp(in_seconds(seconds)),
        )
    )


async def test_hold_then_partial_capture_releases_the_rest(ledger: Stub, user: str) -> None:
    await credit(ledger, user, 100)
    placed = await hold(ledger, user, 60)
    assert (placed.balance.available, placed.balance.held) == (40, 60)
    assert placed.hold.status == pb.HOLD_STATUS_ACTIVE
    captured = await ledger.CaptureHold(
        pb.CaptureHoldRequest(
            request_id=rid(), user_id=user, hold_id=placed.hold.hold_id, amount=45
        )
    )
    assert captured.capture.amount == 45 and captured.release.amount == 15
    assert captured.hold.status == pb.HOLD_STATUS_CAPTURED
    assert (captured.balance.available, captured.balance.held) == (55, 0)
    assert captured.balance.lifetime_spent == 45
    again = await fails(
        ledger.CaptureHold(
            pb.CaptureHoldRequest(request_id=rid(), user_id=user, hold_id=placed.hold.hold_id)
        )
    )
    assert (again.code, again.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "HOLD_ALREADY_CAPTURED",
    )
    await audit_clean(ledger)


async def test_release_returns_points_and_cannot_be_captured_after(ledger: Stub, user: str) -> None:
    await credit(ledger, user, 80)
    placed = await hold(ledger, user, 80)
    released = await ledger.ReleaseHold(
        pb.ReleaseHoldRequest(request_id=rid(), user_id=user, hold_id=placed.hold.hold_id)
    )
    assert released.hold.status == pb.HOLD_STATUS_RELEASED
    assert (released.balance.available, released.balance.held) == (80, 0)
    error = await fails(
        ledger.CaptureHold(
            pb.CaptureHoldRequest(request_id=rid(), user_id=user, hold_id=placed.hold.hold_id)
        )
    )
    assert error.reason == "HOLD_ALREADY_RELEASED"


async def test_hold_cannot_reserve_more_than_available(ledger: Stub, user: str) -> None:
    await credit(ledger, user, 50)
    await hold(ledger, user, 30)
    error = await fails(hold(ledger, user, 30))
    assert (error.reason, error.metadata["available"]) == ("INSUFFICIENT_POINTS", "20")


async def test_hold_past_deadline_is_released(ledger: Stub, user: str) -> None:
    await credit(ledger, user, 70)
    placed = await hold(ledger, user, 70, seconds=1.5)
    await asyncio.sleep(1.7)
    # Read time already treats the hold as released, before any sweeper ran.
    current = await balance(ledger, user)
    assert (current.available, current.held) == (70, 0)
    error = await fails(
        ledger.CaptureHold(
            pb.CaptureHoldRequest(request_id=rid(), user_id=user, hold_id=placed.hold.hold_id)
        )
    )
    assert error.reason == "HOLD_EXPIRED"
    # And the points can be spent right away (the debit releases the overdue hold itself).
    assert (await debit(ledger, user, 70)).balance.available == 0
    await audit_clean(ledger)


async def test_sweeper_releases_overdue_holds(ledger: Stub, user: str) -> None:
    await credit(ledger, user, 25)
    placed = await hold(ledger, user, 25, seconds=1.0)
    for _ in range(50):
        await asyncio.sleep(0.1)
        history = await ledger.ListTransfers(
            pb.ListTransfersRequest(user_id=user, kinds=[pb.TRANSFER_KIND_RELEASE])
        )
        if history.transfers:
            break
    [release] = history.transfers
    assert release.hold_id == placed.hold.hold_id and release.amount == 25
    assert release.reason_code == "HOLD_EXPIRED"
    await audit_clean(ledger)


async def test_reversing_an_earn_reports_the_shortfall(ledger: Stub, user: str) -> None:
    earned = await credit(ledger, user, 100, expires_in_days=5)
    await credit(ledger, user, 10, expires_in_days=50)
    await debit(ledger, user, 70)  # takes 70 from the first lot (it expires sooner)
    reversed_ = await ledger.Reverse(
        pb.ReverseRequest(
            request_id=rid(),
            user_id=user,
            transfer_id=earned.transfer.transfer_id,
            reason_code="ORDER_REFUNDED",
        )
    )
    assert (reversed_.reversed, reversed_.shortfall) == (30, 70)
    assert reversed_.reversal.kind == pb.TRANSFER_KIND_REVERSAL
    assert reversed_.reversal.credit_account == "issuance:test"
    assert reversed_.balance.available == 10  # never negative
    assert reversed_.balance.lifetime_reversed == 30
    await audit_clean(ledger)


async def test_cancelling_a_pending_credit(ledger: Stub, user: str) -> None:
    pending = await credit(ledger, user, 500, matures_in_seconds=3600)
    cancelled = await ledger.Reverse(
        pb.ReverseRequest(request_id=rid(), user_id=user, transfer_id=pending.transfer.transfer_id)
    )
    assert (cancelled.reversed, cancelled.shortfall) == (500, 0)
    assert (cancelled.balance.pending, cancelled.balance.available) == (0, 0)


async def test_refund_restores_the_exact_lots(ledger: Stub, user: str) -> None:
    first = await credit(ledger, user, 40, expires_in_days=10)
    second = await credit(ledger, user, 40, expires_in_days=20)
    spent = await debit(ledger, user, 60)
    assert [(a.lot_id, a.amount) for a in spent.allocations] == [
        (first.lot_id, 40),
        (second.lot_id, 20),
    ]
    refund = await ledger.Reverse(
        pb.ReverseRequest(request_id=rid(), user_id=user, transfer_id=spent.transfer.transfer_id)
    )
    assert refund.reversed == 60
    assert sorted((a.lot_id, a.amount) for a in refund.allocations) == sorted(
        [(first.lot_id, -40), (second.lot_id, -20)]
    )
    # Spending again takes the same lots in the same order: they were restored exactly.
    again = await debit(ledger, user, 60)
    assert [(a.lot_id, a.amount) for a in again.allocations] == [
        (first.lot_id, 40),
        (second.lot_id, 20),
    ]
    over = await fails(
        ledger.Reverse(
            pb.ReverseRequest(
                request_id=rid(), user_id=user, transfer_id=spent.transfer.transfer_id, amount=1
            )
        )
    )
    assert over.reason == "AMOUNT_EXCEEDS_REVERSIBLE"
    await audit_clean(ledger)


async def test_refund_of_an_expired_lot_gets_a_grace_expiry(ledger: Stub, user: str) -> None:
    await credit(ledger, user, 30, expires_in_seconds=2)
    spent = await debit(ledger, user, 30)
    await asyncio.sleep(2.2)  # the lot the points came from has now expired
    refund = await ledger.Reverse(
        pb.ReverseRequest(request_id=rid(), user_id=user, transfer_id=spent.transfer.transfer_id)
    )
    [back] = refund.allocations
    assert back.amount == -30
    days = (back.expire_time.ToDatetime() - in_seconds(0).replace(tzinfo=None)).days
    assert 29 <= days <= 30  # LEDGER_REFUND_GRACE_DAYS default
    assert refund.balance.available == 30
    await audit_clean(ledger)


async def test_refund_of_a_capture(ledger: Stub, user: str) -> None:
    await credit(ledger, user, 50)
    placed = await hold(ledger, user, 50)
    captured = await ledger.CaptureHold(
        pb.CaptureHoldRequest(
            request_id=rid(), user_id=user, hold_id=placed.hold.hold_id, amount=20
        )
    )
    refund = await ledger.Reverse(
        pb.ReverseRequest(request_id=rid(), user_id=user, transfer_id=captured.capture.transfer_id)
    )
    assert refund.reversed == 20
    assert refund.balance.available == 50
    await audit_clean(ledger)


async def test_expire_points_twice_expires_once(ledger: Stub, user: str) -> None:
    await credit(ledger, user, 15, expires_in_seconds=1.5)
    await credit(ledger, user, 5, expires_in_days=30)
    await asyncio.sleep(1.7)
    assert (await balance(ledger, user)).available == 5  # read time already excludes it
    first = await ledger.ExpirePoints(pb.ExpirePointsRequest(request_id=rid()))
    assert first.points_expired >= 15 and first.members_affected >= 1
    run_id = rid()
    second = await ledger.ExpirePoints(pb.ExpirePointsRequest(request_id=run_id))
    assert second.points_expired == 0
    # Operators see the latest run (the scheduled sweep runs hourly: not within this test).
    last = (await ledger.GetStats(pb.GetStatsRequest())).last_expiry_run
    assert (last.request_id, last.points_expired, last.lots_expired) == (run_id, 0, 0)
    assert last.start_time.ToDatetime() <= last.finish_time.ToDatetime()
    current = await balance(ledger, user)
    assert (current.available, current.lifetime_expired) == (5, 15)
    history = await ledger.ListTransfers(
        pb.ListTransfersRequest(user_id=user, kinds=[pb.TRANSFER_KIND_EXPIRY])
    )
    assert [t.amount for t in history.transfers] == [15]
    await audit_clean(ledger)


async def test_expire_points_replay_and_future_time(ledger: Stub) -> None:
    request_id = rid()
    first = await ledger.ExpirePoints(pb.ExpirePointsRequest(request_id=request_id))
    assert await ledger.ExpirePoints(pb.ExpirePointsRequest(request_id=request_id)) == first
    error = await fails(
        ledger.ExpirePoints(
            pb.ExpirePointsRequest(request_id=rid(), as_of_time=to_timestamp(in_seconds(3600)))
        )
    )
    assert [v.field for v in error.violations] == ["as_of_time"]
