"""The wallet's parts beside the points (check-in, tier, caps left today from the rules service;
recent redemptions from the mall), kept per member against the ledger's `changed_time`.

Whatever changes those parts moves the member's points before its call answers: an award is
credited before RecordEvent returns, a redemption or a draw is debited before Redeem or Draw
returns. So while the ledger says a member's points have not changed, the parts fetched last
time still hold, and a wallet costs one ledger call. What changes them without moving points (a
check-in capped to nothing, a shipment, a new day, an award waiting in review) shows after at
most `ttl` seconds, and at once on the gateway that carried it (`forget`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from loyalty.mall.v1 import mall_pb2 as mpb
from loyalty.rules.v1 import rules_pb2 as rpb

Stamp = tuple[int, int]  # the ledger's changed_time as (seconds, nanos); (0, 0): never changed
# Parts fetched alongside the ledger, not after it, may predate the stamp read with them: they
# are kept under this stamp, which matches none, so the member's next wallet asks the ledger
# first and fetches them again after it.
UNORDERED: Stamp = (-1, -1)


def stamp_of(changed: Timestamp) -> Stamp:
    return (changed.seconds, changed.nanos)


@dataclass(frozen=True)
class Parts:
    stamp: Stamp
    fetched: float  # by the cache's clock
    status: rpb.GetMemberStatusResponse
    redemptions: mpb.ListRedemptionsResponse


class WalletParts:
    """At most `size` members' parts, least recently used dropped first; `ttl` 0 keeps none."""

    def __init__(
        self, ttl: float, size: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._parts: OrderedDict[str, Parts] = OrderedDict()

    def known(self, user_id: str) -> bool:
        """Whether parts are kept for the member, current or not (worth asking the ledger)."""
        return user_id in self._parts

    def get(self, user_id: str, stamp: Stamp) -> Parts | None:
        """The member's parts if fetched since the points last changed, within `ttl`."""
        parts = self._parts.get(user_id)
        if parts is None or parts.stamp != stamp or self.clock() - parts.fetched > self.ttl:
            return None
        self._parts.move_to_end(user_id)
        return parts

    def put(
        self,
        user_id: str,
        stamp: Stamp,
        status: rpb.GetMemberStatusResponse,
        redemptions: mpb.ListRedemptionsResponse,
    ) -> None:
        if self.ttl <= 0:
            return
        self._parts[user_id] = Parts(stamp, self.clock(), status, redemptions)
        self._parts.move_to_end(user_id)
        while len(self._parts) > self.size:
            self._parts.popitem(last=False)

    def forget(self, *user_ids: str) -> None:
        for user_id in user_ids:
            self._parts.pop(user_id, None)
