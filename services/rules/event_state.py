"""What an event's transaction reads at its start and writes at its end.

Recording an event took a round trip per read and per write inside its transaction. It is now
BEGIN; `open_event` (the member locked, then what the cached program says the event will read:
risk signals, tier, counters, budget use, streaks); the evaluation, in memory; one
`write_effects` statement (counters, streaks, awards, budget spends, outbox events and the event
itself); COMMIT. The reads are a guess: anything the guess missed (a referrer's counters, a day
the clock moved to) is read when asked. What the evaluation counts is counted here at once, so
a later rule of the same event sees it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from asyncpg import Record

from loyalty.rules.v1 import rules_pb2 as pb
from services.common import outbox
from services.common.db import Conn
from services.common.telemetry import current_traceparent
from services.rules import definitions
from services.rules.program import Program
from services.rules.repository import budgets as budgets_repo
from services.rules.repository import events as events_repo
from services.rules.repository import members as members_repo
from services.rules.repository.risk import RiskSignals, signals_of

CounterKey = tuple[str, str]  # (scope, period)
Spend = tuple[str, str, int, int | None]  # (budget_id, period_key, points, limit or None)
Settled = Callable[[Conn, dict[str, int] | None], Awaitable[None]]


def daily_counter(rule_id: str, day: date) -> CounterKey:
    """The counter of a rule's points on `day`, which its daily cap reads."""
    return (f"rule:{rule_id}", f"day:{day.isoformat()}")


def cap_keys(program: Program, rule: pb.Rule, day: date) -> list[tuple[CounterKey, int, str]]:
    """The counters a rule's award on `day` counts in, each with its cap (0: none) and the name
    that reports a cut by it: the rule's daily, weekly, monthly and lifetime counters, and its
    group's daily one."""
    scope = f"rule:{rule.rule_id}"
    year, week, _ = day.isocalendar()
    keys = [
        (daily_counter(rule.rule_id, day), rule.daily_cap, "rule_daily_cap"),
        ((scope, f"week:{year:04d}-W{week:02d}"), rule.weekly_cap, "rule_weekly_cap"),
        ((scope, f"month:{day.year:04d}-{day.month:02d}"), rule.monthly_cap, "rule_monthly_cap"),
        ((scope, "life"), rule.lifetime_cap, "rule_lifetime_cap"),
    ]
    group_cap = program.cap_groups.get(rule.cap_group) if rule.cap_group else None
    if group_cap is not None:
        group = f"group:{rule.cap_group}"
        keys.append(((group, f"day:{day.isoformat()}"), group_cap, group))
    return keys


def asked_for(program: Program, event: pb.Event, day: date) -> events_repo.Asked:
    """What an event of this program on `day` will read, as far as it can be told in advance."""
    rules = program.rules_for(event.type)
    return events_repo.Asked(
        counters=[key for rule in rules for key, _, _ in cap_keys(program, rule, day)],
        budgets=[(b.budget_id, definitions.period_key(b.period, day)) for b in program.budgets],
        streak_rules=[r.rule_id for r in rules if r.WhichOneof("params") == "check_in"],
    )


@dataclass(frozen=True)
class Opened:
    now: datetime  # the database's time (the transaction's start)
    generation: int  # of the program's configuration
    prior: Record | None  # the recorded answer (prior_sha256, prior_response) of a replay
    signals: RiskSignals
    state: EventState


async def open_event(
    conn: Conn, user_id: str, event_id: str, device_id: str, ip: str, asked: events_repo.Asked
) -> Opened:
    """Lock the member and read what `asked` names, in one round trip."""
    row = await events_repo.open_event(conn, user_id, event_id, device_id, ip, asked)
    prior = row if row["prior_sha256"] is not None else None
    signals = signals_of(row) if prior is None else RiskSignals([], 0, 0, 0)
    state = EventState(user_id, row["since"], row["tier_id"])
    if prior is None:
        state.known(row, asked)
    return Opened(row["at"], row["generation"], prior, signals, state)


class EventState:
    """The reads and pending writes of one event's transaction, for its member `user_id`."""

    def __init__(self, user_id: str, since: datetime | None, tier_id: str | None) -> None:
        self.user_id = user_id
        self._since = since
        self._tier_id = tier_id
        self._counters: dict[tuple[str, str, str], int] = {}  # (user_id, scope, period)
        self._budgets: dict[CounterKey, int] = {}  # (budget_id, period_key) -> used
        self._streaks: dict[str, tuple[date | None, int]] = {}  # the member's, by rule id
        self.effects = events_repo.Effects()
        self._settled: list[Settled] = []

    def known(self, row: Record, asked: events_repo.Asked) -> None:
        """Keep what `open_event` read for `asked`."""
        for (scope, period), points in zip(asked.counters, row["counted"] or (), strict=True):
            self._counters[(self.user_id, scope, period)] = points
        self._budgets.update(zip(asked.budgets, row["budget_used"] or (), strict=True))
        self._streaks = dict.fromkeys(asked.streak_rules, (None, 0))
        for rule_id, day, length in zip(
            row["streak_rules"] or (),
            row["streak_days"] or (),
            row["streak_lengths"] or (),
            strict=True,
        ):
            self._streaks[rule_id] = (day, length)

    async def since(self, conn: Conn, user_id: str) -> datetime:
        if user_id == self.user_id and self._since is not None:
            return self._since
        return await members_repo.user_since(conn, user_id)

    async def tier(self, conn: Conn, user_id: str) -> str:
        if user_id == self.user_id and self._tier_id is not None:
            return self._tier_id
        return await members_repo.current_tier(conn, user_id)

    async def counted(self, conn: Conn, user_id: str, keys: Sequence[CounterKey]) -> list[int]:
        """Points counted so far in each of `keys`, this event's own counts included."""
        missing = [k for k in keys if (user_id, *k) not in self._counters]
        if missing:
            found = await events_repo.counted(conn, user_id, missing)
            for scope, period in missing:
                self._counters[(user_id, scope, period)] = found.get(f"{scope}/{period}", 0)
        return [self._counters[(user_id, *k)] for k in keys]

    def count(self, user_id: str, keys: Sequence[CounterKey], points: int) -> None:
        counts = self.effects.counts
        for scope, period in keys:
            self._counters[(user_id, scope, period)] += points
            counts[(user_id, scope, period)] = counts.get((user_id, scope, period), 0) + points

    async def streak(self, conn: Conn, rule_id: str) -> tuple[date | None, int]:
        """The member's streak of a check-in rule: (last day, length)."""
        if rule_id not in self._streaks:
            self._streaks[rule_id] = await events_repo.streak(conn, self.user_id, rule_id)
        return self._streaks[rule_id]

    def save_streak(self, rule_id: str, day: date, length: int) -> None:
        self._streaks[rule_id] = (day, length)
        self.effects.streaks[(self.user_id, rule_id)] = (day, length)

    async def budget_usage(self, conn: Conn, keys: Sequence[CounterKey]) -> dict[str, int]:
        """Points used of each (budget_id, period_key), read without a lock."""
        missing = [k for k in keys if k not in self._budgets]
        if missing:
            found = await budgets_repo.budget_usage(conn, missing)
            self._budgets.update({k: found.get(k[0], 0) for k in missing})
        return {k[0]: self._budgets[k] for k in keys}

    def add_award(self, row: dict[str, object]) -> None:
        """An `awards` row (its columns by name), stamped with the current trace."""
        self.effects.awards.append({**row, "traceparent": current_traceparent()})

    def emit(self, events: Sequence[outbox.Event]) -> None:
        self.effects.events.extend(events)

    def spend(self, spends: Sequence[Spend], settled: Settled) -> None:
        """Spend (budget_id, period_key, points, limit or None) at `flush`, which then tells
        `settled` each budget's use after (None: a budget could not take its share)."""
        self.effects.spends.extend(spends)
        self._settled.append(settled)

    def save_event(
        self,
        event: pb.Event,
        occurred_at: datetime,
        payload_sha256: bytes,
        response: pb.RecordEventResponse,
    ) -> None:
        self.effects.event = events_repo.event_row(event, occurred_at, payload_sha256, response)

    async def flush(self, conn: Conn) -> None:
        """Write what is pending, in one statement. Raises what a budget spend raises when a
        budget could not take its share (the caller's transaction must then roll back)."""
        effects, settled = self.effects, self._settled
        self.effects, self._settled = events_repo.Effects(), []
        used = await events_repo.write_effects(conn, effects)
        for tell in settled:
            await tell(conn, used)
