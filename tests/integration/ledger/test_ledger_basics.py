"""Credits, debits, lots, idempotency and errors against a real ledger server."""

import asyncio

import grpc

from loyalty.ledger.v1 import ledger_pb2 as pb
from tests.support.ledger_calls import (
    Stub,
    audit_clean,
    balance,
    credit,
    debit,
    fails,
    rid,
)


async def test_credit_then_balance(ledger: Stub, user: str) -> None:
    response = await credit(ledger, user, 120, source="checkin")
    assert response.transfer.kind == pb.TRANSFER_KIND_EARN
    assert response.transfer.debit_account == "issuance:checkin"
    assert response.transfer.credit_account == "member"
    assert response.balance.available == 120
    current = await balance(ledger, user)
    assert (current.available, current.pending, current.held, current.lifetime_earned) == (
        120,
        0,
        0,
        120,
    )


async def test_spending_takes_soonest_expiring_lots_first(ledger: Stub, user: str) -> None:
    late = await credit(ledger, user, 100, expires_in_days=300)
    soon = await credit(ledger, user, 50, expires_in_days=10)
    middle = await credit(ledger, user, 30, expires_in_days=100)
    spent = await debit(ledger, user, 70)
    assert [(a.lot_id, a.amount) for a in spent.allocations] == [
        (soon.lot_id, 50),
        (middle.lot_id, 20),
    ]
    assert spent.balance.available == 110
    expiring = (await balance(ledger, user, days=200)).expiring
    assert [e.amount for e in expiring] == [10]  # only the middle lot's rest is due in 200 days
    assert late.lot_id not in {a.lot_id for a in spent.allocations}
    await audit_clean(ledger)


async def test_replay_returns_the_original_result(ledger: Stub, user: str) -> None:
    request_id = rid()
    first = await credit(ledger, user, 10, request_id=request_id)
    again = await credit(ledger, user, 10, request_id=request_id)
    assert again.transfer.transfer_id == first.transfer.transfer_id
    assert again == first
    assert (await balance(ledger, user)).available == 10


async def test_reusing_a_request_id_for_another_payload_is_refused(ledger: Stub, user: str) -> None:
    request_id = rid()
    await credit(ledger, user, 10, request_id=request_id)
    error = await fails(credit(ledger, user, 11, request_id=request_id))
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert error.reason == "IDEMPOTENCY_KEY_REUSED"
    assert error.domain == "ledger"
    assert (await balance(ledger, user)).available == 10


async def test_insufficient_points_is_replayed_as_the_same_error(ledger: Stub, user: str) -> None:
    await credit(ledger, user, 30)
    request_id = rid()
    error = await fails(debit(ledger, user, 50, request_id=request_id))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "INSUFFICIENT_POINTS"
    assert error.metadata["available"] == "30"
    await credit(ledger, user, 100)
    replayed = await fails(debit(ledger, user, 50, request_id=request_id))
    assert (replayed.reason, replayed.metadata["available"]) == ("INSUFFICIENT_POINTS", "30")
    assert (await balance(ledger, user)).available == 130  # the failed debit changed nothing


async def test_invalid_input_reports_every_field(ledger: Stub) -> None:
    error = await fails(ledger.Credit(pb.CreditRequest(amount=-5, kind=pb.TRANSFER_KIND_SPEND)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field for v in error.violations}
    assert fields == {"request_id", "user_id", "amount", "source", "kind"}


async def test_a_member_id_of_only_spaces_is_invalid(ledger: Stub) -> None:
    error = await fails(credit(ledger, "   ", 5))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [(v.field, v.description) for v in error.violations] == [
        ("user_id", "must not be blank")
    ]


async def test_expiry_in_the_past_is_invalid(ledger: Stub, user: str) -> None:
    error = await fails(credit(ledger, user, 5, expires_in_seconds=-60))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["expire_time"]
    assert (await balance(ledger, user)).available == 0


async def test_pending_points_cannot_be_spent_before_maturity(ledger: Stub, user: str) -> None:
    pending = await credit(ledger, user, 40, matures_in_seconds=2.0)
    assert (pending.balance.available, pending.balance.pending) == (0, 40)
    error = await fails(debit(ledger, user, 10))
    assert error.reason == "INSUFFICIENT_POINTS"
    await asyncio.sleep(2.2)
    matured = await balance(ledger, user)
    assert (matured.available, matured.pending) == (40, 0)
    assert (await debit(ledger, user, 10)).balance.available == 30


async def test_unknown_transfer_and_hold_are_not_found(ledger: Stub, user: str) -> None:
    error = await fails(
        ledger.Reverse(pb.ReverseRequest(request_id=rid(), user_id=user, transfer_id="999999999"))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "TRANSFER_NOT_FOUND")
    error = await fails(
        ledger.ReleaseHold(
            pb.ReleaseHoldRequest(request_id=rid(), user_id=user, hold_id="999999999")
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "HOLD_NOT_FOUND")


async def test_text_postgresql_cannot_store_is_refused(ledger: Stub) -> None:
    error = await fails(
        ledger.Credit(
            pb.CreditRequest(
                request_id="r\x00",
                user_id="u\x00",
                amount=1,
                source="test",
                reason_code="x\x00",
                metadata={"k": "v\x00"},
            )
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in error.violations} == {
        "request_id",
        "user_id",
        "reason_code",
        "metadata",
    }
