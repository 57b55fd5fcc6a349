"""The program's configuration as operators define it (rules, cap groups, campaigns, budgets,
tiers), read in one statement and kept in memory per configuration generation.

Every configuration table bumps `config_generation` when it changes (migration 0002), and the
statement that locks the user for an event also reads the generation, so an event is evaluated
against the configuration of its own moment without reading it again for every event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.db import Conn
from services.rules import experiment_design
from services.rules.repository import program as program_repo

ArmKey = tuple[tuple[str, str], ...]  # (experiment_id, arm_id) pairs, by experiment id


@dataclass(frozen=True)
class Program:
    generation: int
    rules: dict[int, list[pb.Rule]] = field(default_factory=dict)  # enabled, by event type
    cap_groups: dict[str, int] = field(default_factory=dict)  # daily cap by group name
    campaigns: list[pb.Campaign] = field(default_factory=list)  # enabled, by campaign id
    budgets: list[pb.Budget] = field(default_factory=list)  # by budget id
    tiers: list[pb.Tier] = field(default_factory=list)  # lowest threshold first
    experiments: list[pb.Experiment] = field(default_factory=list)  # running, by id
    # In a member's view: "rule:<id>" or "campaign:<id>" -> the (experiment, arm) that decided it.
    decided_by: dict[str, tuple[str, str]] = field(default_factory=dict)
    _views: dict[ArmKey, Program] = field(default_factory=dict, compare=False, repr=False)

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
            experiments=[pb.Experiment.FromString(d) for d in row["experiments"]],
        )

    def for_member(self, assignments: Mapping[str, str]) -> Program:
        """The program a member of these arms ({experiment_id: arm_id}) earns by: a treatment's
        drafts in place of the rules and campaigns of their ids, a holdout without anything the
        experiment tests. Running experiments never test the same rule or campaign, so the
        overlays do not interfere. Built once per combination of arms."""
        key = tuple(sorted(assignments.items()))
        if not key:
            return self
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = self._overlay(key)
        return view

    def _overlay(self, key: ArmKey) -> Program:
        rules = {r.rule_id: r for by_type in self.rules.values() for r in by_type}
        campaigns = {c.campaign_id: c for c in self.campaigns}
        decided: dict[str, tuple[str, str]] = {}
        experiments = {e.experiment_id: e for e in self.experiments}
        for experiment_id, arm_id in key:
            experiment = experiments.get(experiment_id)
            arms = experiment.arms if experiment is not None else []
            arm = next((a for a in arms if a.arm_id == arm_id), None)
            if experiment is None or arm is None:
                continue
            rule_ids, campaign_ids = experiment_design.tested(experiment)
            tested = [f"rule:{i}" for i in rule_ids] + [f"campaign:{i}" for i in campaign_ids]
            decided.update(dict.fromkeys(tested, (experiment_id, arm_id)))
            if arm.role == pb.ARM_ROLE_HOLDOUT:
                for rule_id in rule_ids:
                    rules.pop(rule_id, None)
                for campaign_id in campaign_ids:
                    campaigns.pop(campaign_id, None)
            rules.update({r.rule_id: r for r in arm.rules})
            campaigns.update({c.campaign_id: c for c in arm.campaigns})
        by_type: dict[int, list[pb.Rule]] = defaultdict(list)
        for rule_id in sorted(rules):
            if rules[rule_id].enabled:
                by_type[rules[rule_id].event_type].append(rules[rule_id])
        return replace(
            self,
            rules=dict(by_type),
            campaigns=[campaigns[i] for i in sorted(campaigns) if campaigns[i].enabled],
            decided_by=decided,
            _views={},
        )

    def decider(self, award: pb.Award) -> tuple[str, str] | None:
        """The (experiment, arm) that decided an award: its rule's or a campaign's."""
        keys = [f"rule:{award.rule_id}", *(f"campaign:{c}" for c in award.campaign_ids)]
        return next((self.decided_by[k] for k in keys if k in self.decided_by), None)

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
