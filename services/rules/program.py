"""The program's configuration as operators define it (rules, cap groups, campaigns, budgets,
tiers), read in one statement and kept in memory per configuration generation.

Every configuration table bumps `config_generation` when it changes (migration 0002), and the
statement that locks the user for an event also reads the generation, so an event is evaluated
against the configuration of its own moment without reading it again for every event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.db import Conn
from services.rules.repository import program as program_repo


@dataclass(frozen=True)
class Program:
    generation: int
    rules: dict[int, list[pb.Rule]] = field(default_factory=dict)  # enabled, by event type
    cap_groups: dict[str, int] = field(default_factory=dict)  # daily cap by group name
    campaigns: list[pb.Campaign] = field(default_factory=list)  # enabled, by campaign id
    budgets: list[pb.Budget] = field(default_factory=list)  # by budget id
    tiers: list[pb.Tier] = field(default_factory=list)  # lowest threshold first

    @classmethod
    async def load(cls, conn: Conn) -> Program:
        """The configuration as this statement sees it, with its generation (one snapshot)."""
        row = await program_repo.program_snapshot(conn)
        rules: dict[int, list[pb.Rule]] = defaultdict(list)
        for definition in row["rules"]:
            rule = pb.Rule.FromString(definition)
            rules[rule.event_type].append(rule)
        return cls(
            generation=row["generation"],
            rules=dict(rules),
            cap_groups=dict(zip(row["group_names"], row["group_caps"], strict=True)),
            campaigns=[pb.Campaign.FromString(d) for d in row["campaigns"]],
            budgets=[pb.Budget.FromString(d) for d in row["budgets"]],
            tiers=[pb.Tier.FromString(d) for d in row["tiers"]],
        )

    def cap_group_list(self) -> list[pb.CapGroup]:
        """Every cap group by name, with the enabled rules that share it."""
        members: dict[str, list[str]] = defaultdict(list)
        for rules in self.rules.values():
            for rule in rules:
                if rule.cap_group:
                    members[rule.cap_group].append(rule.rule_id)
        return [
            pb.CapGroup(name=name, daily_cap=cap, rule_ids=sorted(members[name]))
            for name, cap in sorted(self.cap_groups.items())
        ]

    def rules_for(self, event_type: pb.EventType.ValueType) -> list[pb.Rule]:
        return self.rules.get(event_type, [])

    def active_campaigns(self, at: datetime) -> list[pb.Campaign]:
        return [
            c
            for c in self.campaigns
            if c.start_time.ToDatetime(tzinfo=UTC) <= at < c.end_time.ToDatetime(tzinfo=UTC)
        ]

    def budgets_for(self, campaign_budget_ids: Sequence[str]) -> list[pb.Budget]:
        """The global budgets plus the campaigns' own, by budget id."""
        return [b for b in self.budgets if b.applies_to_all or b.budget_id in campaign_budget_ids]


class ProgramCache:
    """The last program loaded; reloaded when an event's transaction sees a newer generation.

    Only programs read outside of configuration-changing transactions may be cached: a
    simulation's drafts are loaded with `Program.load` and never kept.
    """

    def __init__(self) -> None:
        self._program = Program(generation=0)

    @property
    def latest(self) -> Program:
        """The last program loaded, without asking the database (it may be behind)."""
        return self._program

    async def at(self, conn: Conn, generation: int) -> Program:
        """The program of `generation` or a newer one (a change committed a moment ago)."""
        if generation > self._program.generation:
            self._program = max(await Program.load(conn), self._program, key=_generation)
        return self._program


def _generation(program: Program) -> int:
    return program.generation
