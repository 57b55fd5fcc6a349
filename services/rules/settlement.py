"""Settling awards with the ledger (an outbox): credits, then reversals, per user in order.

Awards are written in the event's transaction; this sends them after commit and records the
ledger's answer. Ledger request ids derive from the event and rule, so sending again (after a
crash, or from two places at once) never credits twice.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import grpc

from loyalty.ledger.v1 import ledger_pb2 as ledger
from loyalty.ledger.v1 import ledger_pb2_grpc
from services.common.timestamps import to_timestamp
from services.rules import repository as repo

log = logging.getLogger(__name__)


class Settlement:
    def __init__(
        self,
        pool: asyncpg.Pool,
        ledger_stub: ledger_pb2_grpc.LedgerServiceAsyncStub,
        timeout: float = 5.0,
    ) -> None:
        self.pool = pool
        self.ledger = ledger_stub
        self.timeout = timeout

    async def settle_user(self, user_id: str) -> None:
        """Send every unsettled award of the user; raises if the ledger cannot be reached."""
        async with self.pool.acquire() as conn:
            for award in await repo.unsettled(conn, user_id):
                if award["transfer_id"] is None:
                    request = ledger.CreditRequest(
                        request_id=f"rules:{award['event_id']}:{award['rule_id']}",
                        user_id=user_id,
                        amount=award["points"],
                        source=f"rule:{award['rule_id']}",
                        reason_code="RULE_AWARD",
                        metadata={"event_id": award["event_id"], "rule_id": award["rule_id"]},
                    )
                    if award["matures_at"] is not None:
                        request.mature_time.CopyFrom(to_timestamp(award["matures_at"]))
                    if award["expires_at"] is not None:
                        request.expire_time.CopyFrom(to_timestamp(award["expires_at"]))
                    credited = await self.ledger.Credit(request, timeout=self.timeout)
                    await repo.mark_credited(conn, award, credited.transfer.transfer_id)
                    transfer_id = credited.transfer.transfer_id
                else:
                    transfer_id = award["transfer_id"]
                if award["reversed_by"] is not None:
                    await self.ledger.Reverse(
                        ledger.ReverseRequest(
                            request_id=f"rules-refund:{award['reversed_by']}:{award['event_id']}"
                            f":{award['rule_id']}",
                            user_id=user_id,
                            transfer_id=transfer_id,
                            reason_code="ORDER_REFUNDED",
                        ),
                        timeout=self.timeout,
                    )
                    await repo.mark_reversed(conn, award)

    async def try_settle_user(self, user_id: str) -> None:
        """Best effort right after an event; what fails is retried by `run_forever`."""
        try:
            await self.settle_user(user_id)
        except (grpc.aio.AioRpcError, asyncpg.PostgresError, OSError) as exc:
            log.warning(
                "awards not settled yet; will retry", extra={"user_id": user_id, "error": str(exc)}
            )

    async def run_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            async with self.pool.acquire() as conn:
                users = await repo.users_with_unsettled(conn, 200)
            for user_id in users:
                await self.try_settle_user(user_id)
