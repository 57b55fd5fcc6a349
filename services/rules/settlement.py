"""Settling awards with the ledger (an outbox): credits, then reversals.

Awards are written in the event's transaction; this sends them after commit and records the
ledger's answer. Ledger request ids derive from the event and rule, so sending again (after a
crash, or from two places at once) never credits twice.

Users asked for while a round is running are settled together in the next round: one query, one
ledger PostBatch and one update for all of them, instead of a round trip each per event.

An operation the ledger refuses for good (a permanent reason, see `services/common/peers.py`)
is never sent again: a refused credit marks the award REFUSED (no longer counted as issued), a
refused reversal is closed, and either leaves a dead letter that an operator can retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

import asyncpg
from asyncpg import Record
from opentelemetry import context as otel_context
from opentelemetry import trace

from loyalty.ledger.v1 import ledger_pb2 as ledger
from services.common import dead_letters
from services.common.db import Conn
from services.common.dead_letter_desk import not_retryable
from services.common.dead_letters import Letter
from services.common.errors import FailedPrecondition
from services.common.ledger_client import LedgerClient
from services.common.peers import PeerError, PeerRefused
from services.common.periodic import traced_work
from services.common.telemetry import links_to, point_back
from services.common.timestamps import to_timestamp
from services.rules.repository import awards as awards_repo

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

MAX_BATCH = 1000  # operations per ledger PostBatch (the ledger accepts up to 5000)
SETTLE_ERRORS = (PeerError, asyncpg.PostgresError, OSError)
AWARD, REVERSAL = "RULE_AWARD", "RULE_REVERSAL"  # dead letter kinds


def _key(award: Record) -> tuple[str, str, str]:
    return award["user_id"], award["event_id"], award["rule_id"]


def _subject(award: Record) -> str:
    return f"event:{award['event_id']}:rule:{award['rule_id']}"


def _award_of(subject: str) -> tuple[str, str]:
    """(event_id, rule_id) of a dead letter's subject (rule ids hold no ':')."""
    event, _, rule_id = subject.removeprefix("event:").rpartition(":rule:")
    return event, rule_id


def _credit(award: Record) -> ledger.BatchOperation:
    request = ledger.CreditRequest(
        request_id=f"rules:{award['event_id']}:{award['rule_id']}",
        user_id=award["user_id"],
        amount=award["points"],
        source=f"rule:{award['rule_id']}",
        reason_code="RULE_AWARD",
        metadata={"event_id": award["event_id"], "rule_id": award["rule_id"]},
    )
    if award["matures_at"] is not None:
        request.mature_time.CopyFrom(to_timestamp(award["matures_at"]))
    if award["expires_at"] is not None:
        request.expire_time.CopyFrom(to_timestamp(award["expires_at"]))
    return ledger.BatchOperation(credit=request)


def _reversal(award: Record, transfer_id: str) -> ledger.BatchOperation:
    return ledger.BatchOperation(
        reverse=ledger.ReverseRequest(
            request_id=f"rules-refund:{award['reversed_by']}:{award['event_id']}"
            f":{award['rule_id']}",
            user_id=award["user_id"],
            transfer_id=transfer_id,
            reason_code="ORDER_REFUNDED",
        )
    )


class Settlement:
    def __init__(self, pool: asyncpg.Pool, ledger_client: LedgerClient) -> None:
        self.pool = pool
        self.ledger = ledger_client
        self._queued: dict[str, None] = {}  # users for the next round, in arrival order
        # Who waits for the next round, with the trace context each asked from.
        self._waiting: list[tuple[asyncio.Future[None], otel_context.Context]] = []
        self._rounds: asyncio.Task[None] | None = None

    async def settle(self, user_ids: Sequence[str]) -> None:
        """Send every unsettled award of these users; raises if the ledger cannot be reached.
        An operation the ledger refuses for good is settled and becomes a dead letter."""
        async with self.pool.acquire() as conn:
            awards = await awards_repo.unsettled(conn, user_ids)
            transfers = {_key(a): a["transfer_id"] for a in awards if a["transfer_id"]}
            credits = [a for a in awards if a["transfer_id"] is None]
            credited = []
            posted = await self._post(conn, AWARD, credits, [_credit(a) for a in credits])
            for award, result in posted:
                credited.append((award, result.credit.transfer.transfer_id))
                transfers[_key(award)] = result.credit.transfer.transfer_id
            if credited:
                await awards_repo.mark_credited(conn, credited)
            reversals = [a for a in awards if a["reversed_by"] is not None and _key(a) in transfers]
            operations = [_reversal(a, transfers[_key(a)]) for a in reversals]
            reversed_ = [a for a, _ in await self._post(conn, REVERSAL, reversals, operations)]
            if reversed_:
                await awards_repo.mark_reversed(conn, reversed_)

    async def _post(
        self, conn: Conn, kind: str, awards: list[Record], operations: list[ledger.BatchOperation]
    ) -> list[tuple[Record, ledger.BatchResult]]:
        """Post in batches; the awards whose operation succeeded, with its result. Refusals
        for good are settled here; anything else stays unsettled for the next round."""
        done = []
        for start in range(0, len(operations), MAX_BATCH):
            reply = await self.ledger.post_batch(
                ledger.PostBatchRequest(operations=operations[start : start + MAX_BATCH])
            )
            chunk = awards[start : start + MAX_BATCH]
            for award, result in zip(chunk, reply.results, strict=True):
                if not result.HasField("error"):
                    done.append((award, result))
                    continue
                error = self.ledger.batch_error(result.error)
                if isinstance(error, PeerRefused):
                    await self._refused(conn, kind, award, error)
                else:
                    log.warning("award operation not settled yet", extra={"error": str(error)})
        return done

    async def _refused(self, conn: Conn, kind: str, award: Record, refusal: PeerRefused) -> None:
        log.error(
            "the ledger refused an award operation for good; recorded as a dead letter",
            extra={"award": _key(award), "kind": kind, "reason": refusal.reason},
        )
        async with conn.transaction():
            if kind == AWARD:
                await awards_repo.mark_refused(conn, *_key(award))
            else:
                await awards_repo.mark_reversed(conn, [award])  # nothing more can be taken back
            await dead_letters.record(conn, award["user_id"], kind, _subject(award), refusal)

    async def retry(self, letter: Letter) -> None:
        """An operator's retry of a refused award: send it again, now."""
        event_id, rule_id = _award_of(letter.subject)
        async with self.pool.acquire() as conn:
            if letter.kind != AWARD or not await awards_repo.reopen_refused(
                conn, letter.user_id, event_id, rule_id
            ):
                raise not_retryable(letter)
        await self.settle([letter.user_id])
        async with self.pool.acquire() as conn:
            credited = await awards_repo.credited_transfer(conn, letter.user_id, event_id, rule_id)
        if credited is None:
            raise FailedPrecondition(
                "AWARD_REFUSED_AGAIN",
                "the ledger refused the award again; see the dead letter",
                {"letter_id": str(letter.letter_id)},
            )

    async def settle_soon(self, user_ids: Iterable[str]) -> None:
        """Best effort right after an event, together with whoever else is waiting; what fails
        is retried by `run_forever`. Returns when the round that took these users has ended."""
        self._queued.update(dict.fromkeys(user_ids))
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append((waiter, otel_context.get_current()))
        if self._rounds is None or self._rounds.done():
            self._rounds = asyncio.create_task(self._run_rounds(), name="settlement-rounds")
        await waiter

    async def _run_rounds(self) -> None:
        # Rounds run while anyone waits (queued users always come with a waiter), so no caller
        # is left waiting, whatever it asked for.
        while self._waiting:
            users, self._queued = list(self._queued), {}
            waiting, self._waiting = self._waiting, []
            # The round belongs to the first waiter's trace and links the others' (as the
            # ledger's group commit does), so each event's trace still reaches the ledger.
            links = [trace.Link(trace.get_current_span(c).get_span_context()) for _, c in waiting]
            try:
                with _tracer.start_as_current_span(
                    "rules.settle",
                    context=waiting[0][1],
                    links=links[1:],
                    attributes={"points.users": len(users)},
                ) as round_span:
                    point_back([c for _, c in waiting[1:]], round_span)
                    if users:
                        await self._try_settle(users)
            finally:
                for waiter, _ in waiting:
                    if not waiter.done():
                        waiter.set_result(None)

    async def _try_settle(self, user_ids: list[str]) -> None:
        try:
            await self.settle(user_ids)
        except SETTLE_ERRORS as exc:
            log.warning(
                "awards not settled yet; will retry",
                extra={"users": len(user_ids), "error": str(exc)},
            )
        except Exception:
            log.exception("settling awards failed; will retry")

    async def settle_backlog(self) -> int:
        """One pass of the periodic job: settle whoever has awards left unsettled (after an
        outage, or a crash between commit and settlement). Returns how many users.
        The work links to the traces of the requests that earned the awards."""
        async with self.pool.acquire() as conn:
            users = await awards_repo.users_with_unsettled(conn, 200)
        if users:
            traces = [t for each in users.values() for t in each]
            with traced_work(
                "rules.settle_backlog", links_to(traces), {"points.users": len(users)}
            ):
                await self.settle(list(users))
        return len(users)
