"""Recording events: each event is evaluated in one transaction under its member's lock,
exactly once per event id (a replay answers what was recorded; the same id with another
event is IDEMPOTENCY_KEY_REUSED), and its awards are then settled with the ledger at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from asyncpg import Record

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.errors import DomainError
from services.common.idempotency import fingerprint, key_reused
from services.common.paging import Pager, token_time
from services.common.timestamps import from_timestamp
from services.common.validation import MAX_REQUEST_ID, MAX_USER_ID, Checker
from services.rules import experiments
from services.rules.config import RulesConfig
from services.rules.evaluator import BudgetContention, Evaluator, Occasion
from services.rules.event_state import asked_for, open_event
from services.rules.program import ProgramCache
from services.rules.repository import events as events_repo
from services.rules.settlement import Settlement

MAX_EVENTS = 500  # in one RecordEvents call
NEEDS_ITEM = (pb.EVENT_TYPE_LESSON_COMPLETED, pb.EVENT_TYPE_TASK_COMPLETED)
CLOCK_SKEW = timedelta(minutes=5)


def _now() -> datetime:
    return datetime.now(UTC)


def check_event(event: pb.Event, prefix: str = "event") -> None:
    c = Checker(prefix)
    c.identifier("event_id", event.event_id, MAX_REQUEST_ID)
    c.identifier("user_id", event.user_id, MAX_USER_ID)
    c.require(event.type != pb.EVENT_TYPE_UNSPECIFIED, "type", "must be a known event type")
    purchase = event.type == pb.EVENT_TYPE_PURCHASE
    c.require(
        not purchase or (event.amount.amount_minor > 0 and len(event.amount.currency) == 3),
        "amount",
        "a purchase needs amount_minor > 0 and a currency",
    )
    c.require(
        bool(event.order_id) or event.type not in (pb.EVENT_TYPE_PURCHASE, pb.EVENT_TYPE_REFUND),
        "order_id",
        "is required for purchases and refunds",
    )
    c.require(
        event.type != pb.EVENT_TYPE_ONLINE_TIME or 0 < event.minutes <= 24 * 60,
        "minutes",
        "online time needs minutes from 1 to 1440",
    )
    c.require(
        bool(event.item_id) or event.type not in NEEDS_ITEM,
        "item_id",
        "is required for lessons and tasks",
    )
    for name in ("order_id", "item_id", "device_id", "ip", "referrer_id"):
        c.identifier(name, getattr(event, name), 128, required=False)
    c.done()


def occurred_at(event: pb.Event, now: datetime, prefix: str, max_age: timedelta) -> datetime:
    """When the event happened: now when not given; never in the future (beyond clock skew)
    nor older than `max_age`."""
    if not event.HasField("occurred_at"):
        return now
    when = from_timestamp(event.occurred_at)
    c = Checker(prefix)
    c.require(when <= now + CLOCK_SKEW, "occurred_at", "must not be in the future")
    c.require(when >= now - max_age, "occurred_at", f"must be within the last {max_age.days} days")
    c.done()
    return when


class Events:
    def __init__(
        self,
        pool: asyncpg.Pool,
        config: RulesConfig,
        evaluator: Evaluator,
        programs: ProgramCache,
        settlement: Settlement,
    ) -> None:
        self.pool = pool
        self.config = config
        self.evaluator = evaluator
        self.programs = programs
        self.settlement = settlement

    def occurred_at(self, event: pb.Event, now: datetime, prefix: str) -> datetime:
        return occurred_at(event, now, prefix, self.config.max_event_age)

    async def record(self, event: pb.Event, prefix: str = "event") -> pb.RecordEventResponse:
        check_event(event, prefix)
        print_ = fingerprint("RecordEvent", event)
        try:
            response = await self._record_once(event, print_, prefix, lock_budgets=False)
        except BudgetContention:  # rolled back; rare: a budget nearly spent, or a close race
            response = await self._record_once(event, print_, prefix, lock_budgets=True)
        # Credit (or reverse) right away so users see the points now; retried if it fails.
        await self.settlement.settle_soon(
            [
                event.user_id,
                *(a.beneficiary_user_id for a in response.awards if a.beneficiary_user_id),
            ]
        )
        return response

    async def record_many(
        self, events: list[pb.Event]
    ) -> list[pb.RecordEventResponse | DomainError]:
        """Each event recorded on its own, in order: a refused one does not stop the rest."""
        c = Checker()
        c.require(0 < len(events) <= MAX_EVENTS, "events", f"must hold 1 to {MAX_EVENTS} events")
        c.done()
        results: list[pb.RecordEventResponse | DomainError] = []
        for index, event in enumerate(events):
            try:
                results.append(await self.record(event, f"events[{index}]"))
            except DomainError as exc:
                results.append(exc)
        return results

    async def _record_once(
        self, event: pb.Event, print_: bytes, prefix: str, lock_budgets: bool
    ) -> pb.RecordEventResponse:
        """One transaction: the stored answer for a replay, else the event evaluated. Its reads
        are one round trip and its writes another (see event_state.py)."""
        guess = self.programs.latest  # what the event will read, told from the last program
        day = self.evaluator.day_of(
            from_timestamp(event.occurred_at) if event.HasField("occurred_at") else _now()
        )
        async with self.pool.acquire() as conn, conn.transaction():
            opened = await open_event(
                conn,
                event.user_id,
                event.event_id,
                event.device_id,
                event.ip,
                asked_for(guess, event, day),
            )
            if opened.prior is not None:
                if bytes(opened.prior["prior_sha256"]) != print_:
                    raise key_reused(event.event_id)
                return pb.RecordEventResponse.FromString(opened.prior["prior_response"])
            when = self.occurred_at(event, opened.now, prefix)
            occasion = Occasion(event, when, opened.now, opened.signals, opened.state)
            program = await self.programs.at(conn, opened.generation)
            arms = await experiments.assign(conn, program, opened.state, when)
            member_program = program.for_member(arms)
            response = await self.evaluator.evaluate(conn, member_program, occasion, lock_budgets)
            response.assignments.extend(
                pb.ArmAssignment(experiment_id=e, arm_id=a) for e, a in sorted(arms.items())
            )
            opened.state.save_event(event, when, print_, response)
            await opened.state.flush(conn)
            return response

    async def history(self, user_id: str, pager: Pager) -> list[Record]:
        """Up to `pager.fetch` of a member's events, newest first."""
        before = None
        if pager.after:
            stamp, event_id = pager.after
            before = (token_time(stamp), event_id)
        async with self.pool.acquire() as conn:
            return await events_repo.user_events(conn, user_id, before, pager.fetch)
