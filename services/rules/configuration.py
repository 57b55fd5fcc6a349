"""The program's configuration: rules, cap groups, campaigns, budgets and tiers. Every save
of a rule, campaign, budget or tier keeps a version with who made it (saving what the latest
version already says makes none); a change bumps the configuration's generation, which every
replica's program cache follows (see program.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from asyncpg import Record
from google.protobuf.message import Message

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.db import Conn, current_time
from services.common.paging import Pager, token_number
from services.common.validation import Checker
from services.rules import definitions
from services.rules.evaluator import Evaluator
from services.rules.program import ProgramCache
from services.rules.repository import budgets as budgets_repo
from services.rules.repository import members as members_repo
from services.rules.repository import program as program_repo

M = TypeVar("M", bound=Message)
# ListVersions' kinds, as the repository names them (and the ConfigVersion field set).
CONFIG_KINDS = {
    pb.CONFIG_KIND_RULE: "rule",
    pb.CONFIG_KIND_CAMPAIGN: "campaign",
    pb.CONFIG_KIND_TIER: "tier",
    pb.CONFIG_KIND_BUDGET: "budget",
}


def check_actor(actor: str) -> str:
    """Who makes a configuration change: checked with the request, before any database
    work, and kept with the version it saves."""
    c = Checker()
    c.text("actor", actor, 128, required=False)
    c.done()
    return actor


def check_name(field: str, value: str) -> None:
    c = Checker()
    c.require(definitions.valid_name(value), field, definitions.NAME_RULE)
    c.done()


class Configuration:
    def __init__(self, pool: asyncpg.Pool, evaluator: Evaluator, programs: ProgramCache) -> None:
        self.pool = pool
        self.evaluator = evaluator
        self.programs = programs

    async def save_rule(self, rule: pb.Rule, actor: str) -> pb.Rule:
        definitions.check_rule(rule)
        check_actor(actor)
        async with self.pool.acquire() as conn, conn.transaction():
            await program_repo.lock_rule(conn, rule.rule_id)
            return await program_repo.save_rule(conn, rule, actor)

    async def _save_versioned(
        self,
        kind: str,
        key: str,
        message: M,
        actor: str,
        save: Callable[[Conn, M], Awaitable[None]],
    ) -> M:
        check_actor(actor)
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await program_repo.new_version(conn, kind, key, message, actor)
            await save(conn, stored)
        return stored

    async def save_campaign(self, campaign: pb.Campaign, actor: str) -> pb.Campaign:
        definitions.check_campaign(campaign)
        return await self._save_versioned(
            "campaign", campaign.campaign_id, campaign, actor, program_repo.save_campaign
        )

    async def save_budget(self, budget: pb.Budget, actor: str) -> pb.Budget:
        definitions.check_budget(budget)
        return await self._save_versioned(
            "budget", budget.budget_id, budget, actor, program_repo.save_budget
        )

    async def save_tier(self, tier: pb.Tier, actor: str) -> pb.Tier:
        definitions.check_tier(tier)
        return await self._save_versioned("tier", tier.tier_id, tier, actor, program_repo.save_tier)

    async def save_cap_group(self, name: str, daily_cap: int) -> None:
        c = Checker()
        c.require(definitions.valid_name(name), "name", definitions.NAME_RULE)
        c.require(0 < daily_cap <= definitions.MAX_POINTS, "daily_cap", "must be > 0")
        c.done()
        async with self.pool.acquire() as conn:
            await program_repo.save_cap_group(conn, name, daily_cap)

    async def delete_budget(self, budget_id: str) -> bool:
        check_name("budget_id", budget_id)
        async with self.pool.acquire() as conn:
            return await program_repo.delete_budget(conn, budget_id)

    async def versions(self, kind: int, key: str, pager: Pager) -> tuple[str, list[Record]]:
        """The kind's name and up to `pager.fetch` versions of `key`, newest first."""
        name = CONFIG_KINDS.get(kind)  # type: ignore[call-overload]
        c = Checker()
        c.require(name is not None, "kind", "must be RULE, CAMPAIGN, TIER or BUDGET")
        c.require(definitions.valid_name(key), "id", definitions.NAME_RULE)
        c.done()
        assert name is not None
        before = token_number(pager.after[0]) if pager.after else None
        async with self.pool.acquire() as conn:
            return name, await program_repo.versions(conn, name, key, before, pager.fetch)

    async def rules(self) -> list[pb.Rule]:
        async with self.pool.acquire() as conn:
            return await program_repo.all_rules(conn)

    async def campaigns(self) -> list[pb.Campaign]:
        async with self.pool.acquire() as conn:
            return await program_repo.all_campaigns(conn)

    async def tiers(self) -> list[pb.Tier]:
        async with self.pool.acquire() as conn:
            return await program_repo.all_tiers(conn)

    async def cap_groups(self) -> list[pb.CapGroup]:
        async with self.pool.acquire() as conn:
            _, generation = await members_repo.clock(conn)
            program = await self.programs.at(conn, generation)
        return program.cap_group_list()

    async def budgets(self) -> list[pb.BudgetUsage]:
        """Every budget with what its current period has used."""
        async with self.pool.acquire() as conn:
            now = await current_time(conn)
            budgets = await program_repo.all_budgets(conn)
            day = self.evaluator.day_of(now)
            keys = {b.budget_id: definitions.period_key(b.period, day) for b in budgets}
            used = await budgets_repo.budget_usage(conn, list(keys.items()))
        config = self.evaluator.config
        return [
            pb.BudgetUsage(
                budget=b,
                period_key=keys[b.budget_id],
                used_points=used.get(b.budget_id, 0),
                used_cost=config.cost(used.get(b.budget_id, 0)),
                limit_points=definitions.budget_points(b, config.points_per_major_unit),
            )
            for b in budgets
        ]
