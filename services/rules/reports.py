"""What the program costs: points issued over a period by rule and campaign with their money
value, and simulations of draft rules and campaigns against events (see simulation.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import asyncpg

from loyalty.common.v1 import common_pb2
from loyalty.rules.v1 import rules_pb2 as pb
from services.common.errors import FieldViolation, InvalidArgument
from services.common.timestamps import from_timestamp
from services.common.validation import Checker
from services.rules import definitions, simulation
from services.rules.config import RulesConfig
from services.rules.events import Events, check_event
from services.rules.repository import events as events_repo
from services.rules.repository import members as members_repo
from services.rules.repository import reports as reports_repo

M = TypeVar("M")


def _replayed_at(event: pb.Event, now: datetime, prefix: str) -> datetime:
    """A replayed event happened when it was recorded (so within the window by then)."""
    return from_timestamp(event.occurred_at) if event.HasField("occurred_at") else now


def check_simulation(request: pb.SimulateEventsRequest) -> None:
    c = Checker()
    if request.replay_days:
        c.require(not request.events, "events", "leave empty with replay_days")
        c.require(
            0 < request.replay_days <= simulation.MAX_REPLAY_DAYS, "replay_days", "1 to 30 days"
        )
    else:
        c.require(0 < len(request.events) <= simulation.MAX_EVENTS, "events", "1 to 1000 events")
    c.done()
    for index, rule in enumerate(request.draft_rules):
        _check_draft(definitions.check_rule, rule, "rule", f"draft_rules[{index}]")
    for index, event in enumerate(request.events):
        check_event(event, f"events[{index}]")
    for index, campaign in enumerate(request.draft_campaigns):
        _check_draft(definitions.check_campaign, campaign, "campaign", f"draft_campaigns[{index}]")


def _check_draft(check: Callable[[M], None], draft: M, name: str, prefix: str) -> None:
    """`check` a draft sent in a list: its violations name the draft's place in the list."""
    try:
        check(draft)
    except InvalidArgument as exc:
        raise InvalidArgument.fields(
            [
                FieldViolation(f"{prefix}.{v.field.removeprefix(name + '.')}", v.description)
                for v in exc.violations
            ]
        ) from None


class Reports:
    def __init__(self, pool: asyncpg.Pool, config: RulesConfig, events: Events) -> None:
        self.pool = pool
        self.config = config
        self.events = events

    def cost(self, points: int) -> common_pb2.Money:
        return self.config.cost(points)

    async def issuance(self, span: common_pb2.TimeRange) -> pb.GetIssuanceReportResponse:
        async with self.pool.acquire() as conn:
            issued = await reports_repo.issuance(
                conn,
                from_timestamp(span.start_time) if span.HasField("start_time") else None,
                from_timestamp(span.end_time) if span.HasField("end_time") else None,
                self.config.currency,
            )
        cost = self.cost(issued.points)
        currency = self.config.currency
        return pb.GetIssuanceReportResponse(
            points_issued=issued.points,
            cost=cost,
            purchases=common_pb2.Money(amount_minor=issued.purchases, currency=currency),
            issuance_ratio_ppm=(
                cost.amount_minor * 1_000_000 // issued.purchases if issued.purchases else 0
            ),
            by_rule=[self._issued(r["id"], r["points"]) for r in issued.by_rule],
            by_campaign=[self._issued(r["id"], r["points"]) for r in issued.by_campaign],
            points_in_review=issued.in_review,
            tier_points=issued.tier_points,
            points_per_major_unit=self.config.points_per_major_unit,
        )

    def _issued(self, key: str, points: int) -> pb.IssuedBy:
        return pb.IssuedBy(id=key, points=points, cost=self.cost(points))

    async def simulate(self, request: pb.SimulateEventsRequest) -> pb.SimulateEventsResponse:
        """The drafts against the program in force, over the given events or the last
        `replay_days` of recorded ones (as fresh members); nothing is kept."""
        check_simulation(request)
        events: Sequence[pb.Event] = request.events
        occurred: simulation.OccurredAt = self.events.occurred_at
        evaluator = self.events.evaluator
        capped = False
        async with self.pool.acquire() as conn:
            if request.replay_days:
                now, _ = await members_repo.clock(conn)
                since = now - timedelta(days=request.replay_days)
                recorded = await events_repo.recorded_since(conn, since, simulation.MAX_EVENTS)
                events = simulation.as_new_members(recorded)
                capped = len(recorded) >= simulation.MAX_EVENTS
                occurred = _replayed_at
            drafted = await simulation.simulate(
                conn, evaluator, occurred, events, request.draft_rules, request.draft_campaigns
            )
            current = await simulation.simulate(conn, evaluator, occurred, events)
        return pb.SimulateEventsResponse(
            results=drafted,
            total_points=sum(r.total_points for r in drafted),
            draft=simulation.summary(drafted, self.cost),
            current=simulation.summary(current, self.cost),
            capped=capped,
        )
