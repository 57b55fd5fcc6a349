"""Risk review: awards of events decided REVIEW wait, uncredited, for an operator to approve
(they are then settled with the ledger) or reject. Points in review count toward no tier, so
a decision may move the member."""

from __future__ import annotations

import asyncpg
from asyncpg import Record

from services.common import outbox
from services.common.errors import NotFound
from services.common.outbox import Event
from services.common.paging import Pager, token_time
from services.common.validation import MAX_REQUEST_ID, Checker
from services.rules.evaluator import Evaluator
from services.rules.program import ProgramCache
from services.rules.repository import members as members_repo
from services.rules.repository import reviews as reviews_repo
from services.rules.settlement import Settlement


class Reviews:
    def __init__(
        self,
        pool: asyncpg.Pool,
        evaluator: Evaluator,
        programs: ProgramCache,
        settlement: Settlement,
    ) -> None:
        self.pool = pool
        self.evaluator = evaluator
        self.programs = programs
        self.settlement = settlement

    async def waiting(self, pager: Pager) -> list[Record]:
        """Up to `pager.fetch` events with awards waiting, oldest first."""
        after = None
        if pager.after:
            stamp, user_id, event_id = pager.after
            after = (token_time(stamp), user_id, event_id)
        async with self.pool.acquire() as conn:
            return await reviews_repo.reviews(conn, after, pager.fetch)

    async def waiting_count(self) -> int:
        async with self.pool.acquire() as conn:
            return await reviews_repo.waiting_count(conn)

    async def approve(self, user_id: str, event_id: str) -> int:
        points = await self._decide(user_id, event_id, "APPROVED")
        await self.settlement.settle_soon([user_id])
        return points

    async def reject(self, user_id: str, event_id: str) -> int:
        return await self._decide(user_id, event_id, "REJECTED")

    async def _decide(self, user_id: str, event_id: str, decision: str) -> int:
        """Decide the event's waiting awards; their points."""
        c = Checker()
        c.user_id(user_id)
        c.identifier("event_id", event_id, MAX_REQUEST_ID)
        c.done()
        async with self.pool.acquire() as conn, conn.transaction():
            _, generation = await members_repo.lock_user(conn, user_id)
            points = await reviews_repo.decide_review(conn, user_id, event_id, decision)
            if points is None:  # rolls back: no user row is left for a made-up id
                raise NotFound(
                    "REVIEW_NOT_FOUND",
                    "no awards of this event wait for review",
                    {"user_id": user_id, "event_id": event_id},
                )
            decided = {"event_id": event_id, "decision": decision, "points": points}
            await outbox.emit(conn, [Event("review.decided", user_id, decided)])
            tiers = (await self.programs.at(conn, generation)).tiers
            if tiers:
                await self.evaluator.evaluate_tier(conn, tiers, user_id)
        return points
