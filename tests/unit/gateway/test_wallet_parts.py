"""The wallet's kept parts: reused only under the same ledger stamp, within their time."""

from __future__ import annotations

from gateway.wallet_parts import UNORDERED, WalletParts
from loyalty.mall.v1 import mall_pb2 as mpb
from loyalty.rules.v1 import rules_pb2 as rpb


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def status(streak: int) -> rpb.GetMemberStatusResponse:
    reply = rpb.GetMemberStatusResponse()
    reply.check_in.streak = streak
    return reply


def test_parts_hold_while_the_stamp_stands_and_time_allows() -> None:
    clock = Clock()
    kept = WalletParts(10.0, clock=clock)
    assert not kept.known("u")
    kept.put("u", (5, 1), status(3), mpb.ListRedemptionsResponse())
    assert kept.known("u")
    found = kept.get("u", (5, 1))
    assert found is not None and found.status.check_in.streak == 3
    assert kept.get("u", (5, 2)) is None  # the points moved since
    clock.now += 10.5
    assert kept.get("u", (5, 1)) is None  # too old, whatever the stamp


def test_parts_fetched_beside_the_ledger_match_no_stamp() -> None:
    kept = WalletParts(10.0, clock=Clock())
    kept.put("u", UNORDERED, status(1), mpb.ListRedemptionsResponse())
    assert kept.known("u")
    assert kept.get("u", (0, 0)) is None


def test_forget_and_size_bound_and_zero_ttl() -> None:
    kept = WalletParts(10.0, size=2, clock=Clock())
    for user in ("a", "b", "c"):
        kept.put(user, (1, 0), status(1), mpb.ListRedemptionsResponse())
    assert not kept.known("a")  # least recently used went first
    assert kept.known("b") and kept.known("c")
    kept.forget("b", "nobody")
    assert not kept.known("b")
    off = WalletParts(0.0, clock=Clock())
    off.put("u", (1, 0), status(1), mpb.ListRedemptionsResponse())
    assert not off.known("u")
