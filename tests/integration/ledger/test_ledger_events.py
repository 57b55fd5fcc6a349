"""The ledger's events: written with the change that caused them (a replay or a refusal
writes none), each valid against its published JSON Schema."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from services.ledger.server import SPEC as LEDGER
from tests.support.events import events_of, types_of
from tests.support.hosts import running
from tests.support.ledger_calls import Stub, credit, debit, fails, rid


async def test_each_applied_transfer_is_an_event(
    ledger: Stub, database_url: str, user: str
) -> None:
    request = pb.CreditRequest(request_id=rid(), user_id=user, amount=100, source="test")
    request.expire_time.FromDatetime(datetime.now(UTC) + timedelta(days=30))
    earned = await ledger.Credit(request)
    assert await ledger.Credit(request) == earned  # a replay: no second event
    await debit(ledger, user, 30)
    hold = pb.HoldRequest(request_id=rid(), user_id=user, amount=20, reason_code="REDEEM")
    hold.deadline_time.FromDatetime(datetime.now(UTC) + timedelta(minutes=5))
    held = await ledger.Hold(hold)
    await ledger.CaptureHold(
        pb.CaptureHoldRequest(request_id=rid(), user_id=user, hold_id=held.hold.hold_id)
    )
    refused = await fails(debit(ledger, user, 1000))
    assert refused.reason == "INSUFFICIENT_POINTS"
    await ledger.Reverse(
        pb.ReverseRequest(
            request_id=rid(),
            user_id=user,
            transfer_id=earned.transfer.transfer_id,
            amount=10,
            reason_code="ORDER_REFUNDED",
        )
    )
    events = await events_of(database_url, "ledger", user)
    assert types_of(events) == [
        "points.credited",
        "points.debited",
        "points.debited",
        "points.reversed",
    ]
    credited, debited, captured, reversed_ = (e["data"] for e in events)
    assert credited["transfer_id"] == earned.transfer.transfer_id
    assert (credited["amount"], credited["source"]) == (100, "test")
    assert credited["expires_at"].endswith("Z")
    assert (debited["amount"], captured["amount"], reversed_["amount"]) == (30, 20, 10)
    assert reversed_["related_transfer_id"] == earned.transfer.transfer_id
    assert len({e["id"] for e in events}) == 4
    assert all(e["member_id"] == user and e["schema_version"] == 1 for e in events)


async def test_an_operators_adjustment_is_a_credit_or_a_debit(
    ledger: Stub, database_url: str, user: str
) -> None:
    reason, kind = "OPERATOR_ADJUSTMENT", pb.TRANSFER_KIND_ADJUSTMENT
    await ledger.Credit(
        pb.CreditRequest(
            request_id=rid(),
            user_id=user,
            amount=9,
            source="adjustment",
            reason_code=reason,
            kind=kind,
        )
    )
    await ledger.Debit(
        pb.DebitRequest(request_id=rid(), user_id=user, amount=4, reason_code=reason, kind=kind)
    )
    events = await events_of(database_url, "ledger", user)
    assert types_of(events) == ["points.credited", "points.debited"]
    credited, debited = (e["data"] for e in events)
    assert (credited["amount"], credited["source"], debited["amount"]) == (9, "adjustment", 4)
    assert "source" not in debited


@pytest.mark.slow
async def test_an_expiry_run_announces_each_member_once(
    ledger: Stub, database_url: str, user: str
) -> None:
    await credit(ledger, user, 7, expires_in_seconds=1)
    await credit(ledger, user, 5, expires_in_seconds=1)
    await asyncio.sleep(1.2)
    await ledger.ExpirePoints(pb.ExpirePointsRequest(request_id=rid()))
    expired = [
        e for e in await events_of(database_url, "ledger", user) if e["type"] == "points.expired"
    ]
    assert [(e["data"]["amount"], e["data"]["lots"]) for e in expired] == [(12, 2)]


async def test_lots_announce_expiring_soon_and_matured_once(private_database: str) -> None:
    env = {"LEDGER_NOTICE_SECONDS": "0.1", "LEDGER_EXPIRING_SOON_DAYS": "7"}
    async with (
        running(LEDGER, private_database, env) as host,
        grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel,
    ):
        ledger: Stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        soon = await credit(ledger, "notices", 40, expires_in_days=3)
        await credit(ledger, "notices", 60, expires_in_days=30)  # outside the window
        pending = await credit(ledger, "notices", 25, expires_in_days=30, matures_in_seconds=0.3)
        for _ in range(100):
            events = await events_of(private_database, "ledger", "notices")
            if len(events) >= 5:
                break
            await asyncio.sleep(0.1)
        await host.job("lot-notices").passes.more(3)  # and nothing is announced twice
        events = await events_of(private_database, "ledger", "notices")
    notices = [e for e in events if e["type"] in ("points.expiring_soon", "points.pending_matured")]
    assert [(e["type"], e["data"]["lot_id"], e["data"]["amount"]) for e in notices] == [
        ("points.expiring_soon", soon.lot_id, 40),
        ("points.pending_matured", pending.lot_id, 25),
    ]


async def test_a_members_events_are_numbered_without_gaps_in_commit_order(
    ledger: Stub, database_url: str, user: str
) -> None:
    """40 concurrent writes (group commit batches them), refusals and replays among them: the
    member's events are numbered 1..n with no gap, and occurred_at grows along the numbers."""
    await credit(ledger, user, 10)

    async def write(n: int) -> None:
        if n % 4 == 0:
            await fails(debit(ledger, user, 10**9))  # refused: no event, no number
        elif n % 4 == 1:
            await debit(ledger, user, 1)
        else:
            await credit(ledger, user, 2)

    await asyncio.gather(*(write(n) for n in range(40)))
    request_id = rid()
    await credit(ledger, user, 1, request_id=request_id)
    await credit(ledger, user, 1, request_id=request_id)  # a replay: no event, no number
    events = await events_of(database_url, "ledger", user)
    assert [e["sequence"] for e in events] == list(range(1, 1 + 1 + 10 + 20 + 1))
    assert {e["source"] for e in events} == {"ledger"}
    times = [datetime.fromisoformat(e["occurred_at"]) for e in events]
    assert times == sorted(times)
