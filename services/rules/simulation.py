"""Simulate before publishing: events evaluated against draft rules and campaigns, and against
the program in force, each inside a transaction that is rolled back, summed up by rule and
campaign with what the points would cost."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from loyalty.common.v1 import common_pb2
from loyalty.rules.v1 import rules_pb2 as pb
from services.common.db import Conn
from services.common.timestamps import from_timestamp
from services.rules.evaluator import Evaluator, Occasion
from services.rules.event_state import asked_for, open_event
from services.rules.program import Program
from services.rules.repository import program as program_repo

# When an event happened, given the database's now and its field prefix (validated on the way).
OccurredAt = Callable[[pb.Event, datetime, str], datetime]
MAX_EVENTS = 1000
MAX_REPLAY_DAYS = 30


def replay_id(user_id: str) -> str:
    """The fresh member a real member replays as: a new id, so no state of theirs applies."""
    return "replay-" + hashlib.sha256(user_id.encode()).hexdigest()[:24]


def as_new_members(events: Sequence[pb.Event]) -> list[pb.Event]:
    """Recorded events as fresh members' (see replay_id), referrers included."""
    replayed = []
    for event in events:
        copy = pb.Event()
        copy.CopyFrom(event)
        copy.user_id = replay_id(event.user_id)
        if event.referrer_id:
            copy.referrer_id = replay_id(event.referrer_id)
        replayed.append(copy)
    return replayed


async def simulate(
    conn: Conn,
    evaluator: Evaluator,
    occurred: OccurredAt,
    events: Sequence[pb.Event],
    draft_rules: Sequence[pb.Rule] = (),
    draft_campaigns: Sequence[pb.Campaign] = (),
) -> list[pb.RecordEventResponse]:
    """What each event would earn, in order, with the drafts in place of the stored rules and
    campaigns of the same ids. Nothing is kept: the work runs in a transaction rolled back."""
    results = []
    transaction = conn.transaction()
    await transaction.start()
    try:
        for rule in draft_rules:
            await program_repo.save_rule(conn, rule)
        for campaign in draft_campaigns:
            stored = await program_repo.new_version(
                conn, "campaign", campaign.campaign_id, campaign
            )
            await program_repo.save_campaign(conn, stored)
        program = await Program.load(conn)  # with the drafts; never cached
        for index, event in enumerate(events):
            # No event id: a simulated event is never a replay. Streaks, caps and budgets move
            # within the simulation; risk signals see only recorded events.
            guess = from_timestamp(event.occurred_at) if event.HasField("occurred_at") else None
            opened = await open_event(
                conn,
                event.user_id,
                "",
                event.device_id,
                event.ip,
                asked_for(program, event, evaluator.day_of(guess or datetime.now(UTC))),
            )
            occurred_at = occurred(event, opened.now, f"events[{index}]")
            occasion = Occasion(event, occurred_at, opened.now, opened.signals, opened.state)
            results.append(await evaluator.evaluate(conn, program, occasion, lock_budgets=True))
            await opened.state.flush(conn)
    finally:
        await transaction.rollback()
    return results


def summary(
    results: Sequence[pb.RecordEventResponse], cost: Callable[[int], common_pb2.Money]
) -> pb.SimulationSummary:
    """Points and cost in total, by rule and by campaign (each campaign's share)."""
    by_rule: Counter[str] = Counter()
    by_campaign: Counter[str] = Counter()
    tier_points = 0
    for result in results:
        for award in result.awards:
            if not award.points:
                continue
            by_rule[award.rule_id] += award.points
            tier_points += award.tier_points
            for campaign_id, share in zip(award.campaign_ids, award.campaign_shares, strict=True):
                by_campaign[campaign_id] += share
    total = sum(r.total_points for r in results)

    def lines(points: Counter[str]) -> list[pb.IssuedBy]:
        return [pb.IssuedBy(id=i, points=p, cost=cost(p)) for i, p in sorted(points.items())]

    return pb.SimulationSummary(
        total_points=total,
        cost=cost(total),
        by_rule=lines(by_rule),
        by_campaign=lines(by_campaign),
        tier_points=tier_points,
    )
