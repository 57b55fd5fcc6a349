"""Hypothesis stateful test: random credits, debits, holds, captures, releases, reversals and
refunds against a small in-memory model of lots. After every step the ledger's balance
matches the model and `Audit` finds every invariant intact."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from services.common.server import ServiceHost
from services.common.timestamps import to_timestamp

NOW = datetime.now(UTC)


@dataclass
class Lot:
    remaining: int
    expires: int  # days from now; distinct per lot so the order is unambiguous


@dataclass
class Model:
    lots: dict[str, Lot] = field(default_factory=dict)  # lot_id -> lot
    credits: dict[str, tuple[str, int]] = field(default_factory=dict)  # transfer -> (lot, amount)
    reversed: dict[str, int] = field(default_factory=dict)  # credit transfer -> reversed so far
    taken: dict[str, dict[str, int]] = field(default_factory=dict)  # spend/hold -> lot -> pts
    holds: dict[str, tuple[str, int]] = field(default_factory=dict)  # active: id -> (tid, amt)
    captures: dict[str, str] = field(default_factory=dict)  # capture transfer -> hold transfer

    @property
    def available(self) -> int:
        return sum(lot.remaining for lot in self.lots.values())

    @property
    def held(self) -> int:
        return sum(amount for _, amount in self.holds.values())

    def take(self, amount: int) -> dict[str, int]:
        taken: dict[str, int] = {}
        for lot_id, lot in sorted(self.lots.items(), key=lambda kv: (kv[1].expires, int(kv[0]))):
            part = min(lot.remaining, amount - sum(taken.values()))
            if part:
                lot.remaining -= part
                taken[lot_id] = part
        return taken

    def give_back(self, origin: str, amount: int) -> None:
        """Latest-expiring lots first, as the ledger does."""
        out = self.taken[origin]
        for lot_id in sorted(out, key=lambda k: (self.lots[k].expires, int(k)), reverse=True):
            part = min(out[lot_id], amount)
            out[lot_id] -= part
            self.lots[lot_id].remaining += part
            amount -= part
        assert amount == 0


class LedgerMachine(RuleBasedStateMachine):
    stub: ledger_pb2_grpc.LedgerServiceStub

    def __init__(self) -> None:
        super().__init__()
        self.user = f"model-{uuid.uuid4().hex[:10]}"
        self.model = Model()
        self.days = iter(range(10, 10_000, 7))

    def rid(self) -> str:
        return uuid.uuid4().hex

    @initialize(amount=st.integers(1, 200))
    def first_credit(self, amount: int) -> None:
        self.credit(amount)

    @rule(amount=st.integers(1, 200))
    def credit(self, amount: int) -> None:
        days = next(self.days)
        response = self.stub.Credit(
            pb.CreditRequest(
                request_id=self.rid(),
                user_id=self.user,
                amount=amount,
                source="model",
                expire_time=to_timestamp(NOW + timedelta(days=days)),
            )
        )
        self.model.lots[response.lot_id] = Lot(amount, days)
        self.model.credits[response.transfer.transfer_id] = (response.lot_id, amount)

    @rule(amount=st.integers(1, 300))
    def debit(self, amount: int) -> None:
        enough = amount <= self.model.available
        try:
            response = self.stub.Debit(
                pb.DebitRequest(request_id=self.rid(), user_id=self.user, amount=amount)
            )
        except grpc.RpcError:
            assert not enough
            return
        assert enough
        taken = self.model.take(amount)
        assert {a.lot_id: a.amount for a in response.allocations} == taken
        self.model.taken[response.transfer.transfer_id] = taken

    @rule(amount=st.integers(1, 300))
    def hold(self, amount: int) -> None:
        enough = amount <= self.model.available
        try:
            response = self.stub.Hold(
                pb.HoldRequest(
                    request_id=self.rid(),
                    user_id=self.user,
                    amount=amount,
                    deadline_time=to_timestamp(datetime.now(UTC) + timedelta(hours=1)),
                )
            )
        except grpc.RpcError:
            assert not enough
            return
        assert enough
        tid = response.hold.hold_transfer_id
        self.model.taken[tid] = self.model.take(amount)
        self.model.holds[response.hold.hold_id] = (tid, amount)

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data(), fraction=st.integers(0, 100))
    def capture(self, data: st.DataObject, fraction: int) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.model.holds)))
        tid, amount = self.model.holds.pop(hold_id)
        captured = max(1, amount * fraction // 100)
        response = self.stub.CaptureHold(
            pb.CaptureHoldRequest(
                request_id=self.rid(), user_id=self.user, hold_id=hold_id, amount=captured
            )
        )
        assert response.capture.amount == captured
        self.model.give_back(tid, amount - captured)
        self.model.captures[response.capture.transfer_id] = tid

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.model.holds)))
        tid, amount = self.model.holds.pop(hold_id)
        self.stub.ReleaseHold(
            pb.ReleaseHoldRequest(request_id=self.rid(), user_id=self.user, hold_id=hold_id)
        )
        self.model.give_back(tid, amount)

    @rule(data=st.data(), fraction=st.integers(1, 100))
    def reverse_credit(self, data: st.DataObject, fraction: int) -> None:
        tid = data.draw(st.sampled_from(sorted(self.model.credits)))
        lot_id, amount = self.model.credits[tid]
        left = amount - self.model.reversed.get(tid, 0)
        target = max(1, left * fraction // 100) if left else 0
        response = self.stub.Reverse(
            pb.ReverseRequest(
                request_id=self.rid(), user_id=self.user, transfer_id=tid, amount=target
            )
        )
        take = min(target, self.model.lots[lot_id].remaining)
        assert (response.reversed, response.shortfall) == (take, target - take)
        self.model.lots[lot_id].remaining -= take
        self.model.reversed[tid] = self.model.reversed.get(tid, 0) + take

    @precondition(lambda self: any(sum(t.values()) for t in self._refundable().values()))
    @rule(data=st.data(), fraction=st.integers(1, 100))
    def refund(self, data: st.DataObject, fraction: int) -> None:
        refundable = {k: v for k, v in self._refundable().items() if sum(v.values())}
        transfer = data.draw(st.sampled_from(sorted(refundable)))
        origin = self.model.captures.get(transfer, transfer)
        left = sum(self.model.taken[origin].values())
        amount = max(1, left * fraction // 100)
        response = self.stub.Reverse(
            pb.ReverseRequest(
                request_id=self.rid(), user_id=self.user, transfer_id=transfer, amount=amount
            )
        )
        assert response.reversed == amount
        self.model.give_back(origin, amount)

    def _refundable(self) -> dict[str, dict[str, int]]:
        """Spends and captures (by their transfer id) with what they still have out."""
        active = {tid for tid, _ in self.model.holds.values()}
        spends = {
            k: v
            for k, v in self.model.taken.items()
            if k not in active and k not in self.model.captures.values()
        }
        captures = {c: self.model.taken[h] for c, h in self.model.captures.items()}
        return {**spends, **captures}

    @invariant()
    def balance_matches_model(self) -> None:
        balance = self.stub.GetBalance(pb.GetBalanceRequest(user_id=self.user)).balance
        assert (balance.available, balance.held) == (self.model.available, self.model.held)

    @invariant()
    def audit_is_clean(self) -> None:
        report = self.stub.Audit(pb.AuditRequest())
        assert report.ok, list(report.violations)[:5]


def _run(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        LedgerMachine.stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        test = LedgerMachine.TestCase
        test.settings = settings(
            max_examples=12,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        test().runTest()


async def test_ledger_matches_model(ledger_host: ServiceHost) -> None:
    # The machine is synchronous; it runs in a thread while the server serves on this loop.
    await asyncio.to_thread(_run, ledger_host.port)
