"""History, segmentation, statistics, batches and live balance updates."""

import asyncio
import uuid

from loyalty.ledger.v1 import ledger_pb2 as pb
from tests.support.ledger_calls import Stub, audit_clean, balance, credit, debit, fails, rid


async def test_history_is_newest_first_and_paginated(ledger: Stub, user: str) -> None:
    for amount in range(1, 8):
        await credit(ledger, user, amount)
    await debit(ledger, user, 3)
    seen: list[int] = []
    token = ""
    pages = 0
    while True:
        page = await ledger.ListTransfers(
            pb.ListTransfersRequest(user_id=user, page_size=3, page_token=token)
        )
        seen.extend(t.amount for t in page.transfers)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == [3, 7, 6, 5, 4, 3, 2, 1]
    assert pages == 3
    spends = await ledger.ListTransfers(
        pb.ListTransfersRequest(user_id=user, kinds=[pb.TRANSFER_KIND_SPEND])
    )
    assert [t.kind for t in spends.transfers] == [pb.TRANSFER_KIND_SPEND]
    error = await fails(
        ledger.ListTransfers(pb.ListTransfersRequest(user_id=user, page_token="!!not-a-token"))
    )
    assert [v.field for v in error.violations] == ["page_token"]


async def test_balance_carries_recent_transfers_and_when_points_changed(
    ledger: Stub, user: str
) -> None:
    never = await ledger.GetBalance(pb.GetBalanceRequest(user_id=user, recent_transfers=5))
    assert not never.balance.HasField("changed_time")
    assert list(never.recent) == []
    for amount in (1, 2, 3):
        await credit(ledger, user, amount)
    first = await ledger.GetBalance(pb.GetBalanceRequest(user_id=user, recent_transfers=2))
    assert [t.amount for t in first.recent] == [3, 2]
    assert first.balance.available == 6
    again = await ledger.GetBalance(pb.GetBalanceRequest(user_id=user))
    assert again.balance.changed_time == first.balance.changed_time  # reads change nothing
    assert list(again.recent) == []
    await debit(ledger, user, 4)
    after = await ledger.GetBalance(pb.GetBalanceRequest(user_id=user, recent_transfers=1))
    assert after.balance.changed_time.ToDatetime() > first.balance.changed_time.ToDatetime()
    assert [t.kind for t in after.recent] == [pb.TRANSFER_KIND_SPEND]
    error = await fails(ledger.GetBalance(pb.GetBalanceRequest(user_id=user, recent_transfers=51)))
    assert [v.field for v in error.violations] == ["recent_transfers"]


async def members_from(ledger: Stub, prefix: str, min_available: int) -> list[str]:
    """Every page of ListMembers, keeping this test's members."""
    found: list[str] = []
    token = ""
    while True:
        page = await ledger.ListMembers(
            pb.ListMembersRequest(min_available=min_available, page_size=50, page_token=token)
        )
        found.extend(m.user_id for m in page.members if m.user_id.startswith(prefix))
        assert all(m.available >= min_available for m in page.members)
        token = page.next_page_token
        if not token:
            return found


async def test_list_members_by_available_balance(ledger: Stub) -> None:
    prefix = f"seg-{uuid.uuid4().hex[:6]}"
    rich, poor, pending_rich, spent = (f"{prefix}-{c}" for c in "abcd")
    await credit(ledger, rich, 6000)
    await credit(ledger, poor, 4000)
    await credit(ledger, pending_rich, 9000, matures_in_seconds=3600)  # not available yet
    await credit(ledger, spent, 10)
    await debit(ledger, spent, 10)  # a member at 0
    assert await members_from(ledger, prefix, 5000) == [rich]
    # 0 promises every member: those at 0 too.
    assert await members_from(ledger, prefix, 0) == [rich, poor, pending_rich, spent]


async def test_stats_by_source(ledger: Stub, user: str) -> None:
    source = f"campaign-{uuid.uuid4().hex[:6]}"
    earned = await credit(ledger, user, 300, source=source)
    await ledger.Reverse(
        pb.ReverseRequest(
            request_id=rid(), user_id=user, transfer_id=earned.transfer.transfer_id, amount=100
        )
    )
    stats = await ledger.GetStats(pb.GetStatsRequest())
    [mine] = [s for s in stats.by_source if s.source == source]
    assert (mine.issued, mine.reversed) == (300, 100)
    assert stats.outstanding_liability >= 200
    assert stats.issued >= 300


async def test_stats_per_day_add_up_to_the_period(ledger: Stub, user: str) -> None:
    """Tests run one at a time: a window opened at this test's first transfer (the database's
    time, not this process's) holds this test's transfers alone."""
    earned = await credit(ledger, user, 300)
    ask = pb.GetStatsRequest(by_day=True)
    ask.time_range.start_time.CopyFrom(earned.transfer.create_time)
    await debit(ledger, user, 50)
    await ledger.Reverse(
        pb.ReverseRequest(
            request_id=rid(), user_id=user, transfer_id=earned.transfer.transfer_id, amount=100
        )
    )
    stats = await ledger.GetStats(ask)
    totals = (stats.issued, stats.spent, stats.expired, stats.reversed)
    assert totals == (300, 50, 0, 100)
    assert stats.days and all(d.date[:2] == "20" for d in stats.days)
    assert (
        tuple(
            sum(getattr(d, f) for d in stats.days)
            for f in ("issued", "spent", "expired", "reversed")
        )
        == totals
    )
    error = await fails(ledger.GetStats(pb.GetStatsRequest(by_day=True)))
    assert [v.field for v in error.violations] == ["time_range.start_time"]


async def test_post_batch_applies_valid_operations_and_reports_failures(
    ledger: Stub, user: str
) -> None:
    ops = [
        pb.BatchOperation(
            credit=pb.CreditRequest(request_id=rid(), user_id=user, amount=100, source="batch")
        ),
        pb.BatchOperation(debit=pb.DebitRequest(request_id=rid(), user_id=user, amount=500)),
        pb.BatchOperation(debit=pb.DebitRequest(request_id=rid(), user_id=user, amount=40)),
        pb.BatchOperation(credit=pb.CreditRequest(request_id=rid(), user_id=user, amount=0)),
        pb.BatchOperation(),
    ]
    response = await ledger.PostBatch(pb.PostBatchRequest(operations=ops))
    kinds = [r.WhichOneof("result") for r in response.results]
    assert kinds == ["credit", "error", "debit", "error", "error"]
    assert response.results[1].error.reason == "INSUFFICIENT_POINTS"
    assert response.results[3].error.reason == "INVALID_ARGUMENT"
    assert response.results[2].debit.balance.available == 60
    assert (await balance(ledger, user)).available == 60
    replay = await ledger.PostBatch(pb.PostBatchRequest(operations=ops[:3]))
    assert [r.WhichOneof("result") for r in replay.results] == ["credit", "error", "debit"]
    assert (await balance(ledger, user)).available == 60  # replayed, not re-applied
    await audit_clean(ledger)


async def test_watch_balance_streams_each_committed_change(ledger: Stub, user: str) -> None:
    # Delivery latency is measured by bench/ledger_watch.py; here: every change arrives.
    stream = ledger.WatchBalance(pb.WatchBalanceRequest(user_id=user))
    first = await stream.read()
    assert isinstance(first, pb.WatchBalanceResponse)
    assert first.balance.available == 0
    await credit(ledger, user, 42)
    update = await asyncio.wait_for(stream.read(), timeout=5)
    assert isinstance(update, pb.WatchBalanceResponse)
    assert update.balance.available == 42
    await debit(ledger, user, 2)
    update = await asyncio.wait_for(stream.read(), timeout=5)
    assert isinstance(update, pb.WatchBalanceResponse)
    assert update.balance.available == 40
    stream.cancel()
