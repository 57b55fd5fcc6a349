"""The program's configuration: rules, cap groups, campaigns, budgets and tiers, and their
versions. Functions run inside the caller's transaction."""

from __future__ import annotations

from datetime import UTC
from typing import TypeVar

from asyncpg import Record
from google.protobuf.message import Message

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.db import Conn, lock_for_transaction

M = TypeVar("M", bound=Message)


async def all_rules(conn: Conn) -> list[pb.Rule]:
    rows = await conn.fetch("SELECT definition FROM rules ORDER BY rule_id")
    return [pb.Rule.FromString(r["definition"]) for r in rows]


async def program_snapshot(conn: Conn) -> Record:
    """Every enabled rule, cap group, campaign, budget and tier, and the running experiments,
    with the configuration's generation, in one statement (one snapshot)."""
    row = await conn.fetchrow(
        """
        SELECT (SELECT generation FROM config_generation) AS generation,
               ARRAY(SELECT definition FROM rules WHERE enabled ORDER BY rule_id) AS rules,
               ARRAY(SELECT name FROM cap_groups ORDER BY name) AS group_names,
               ARRAY(SELECT daily_cap FROM cap_groups ORDER BY name) AS group_caps,
               ARRAY(SELECT definition FROM campaigns WHERE enabled
                     ORDER BY campaign_id) AS campaigns,
               ARRAY(SELECT definition FROM budgets ORDER BY budget_id) AS budgets,
               ARRAY(SELECT definition FROM tiers
                     ORDER BY min_points_12m, tier_id) AS tiers,
               ARRAY(SELECT definition FROM experiments WHERE status = 'RUNNING'
                     ORDER BY experiment_id) AS experiments
        """
    )
    assert row is not None
    return row


async def lock_rule(conn: Conn, rule_id: str) -> None:
    """Serialise changes to one rule (its versions), for this transaction."""
    await lock_for_transaction(conn, f"points.rules.{rule_id}")


def unchanged(latest: Record | None, message: M) -> M | None:
    """The latest stored version when `message` says the same (its version aside): saving it
    again makes no new version."""
    if latest is None:
        return None
    stored = type(message).FromString(latest["definition"])
    asked = type(message)()
    asked.CopyFrom(message)
    asked.version = stored.version  # type: ignore[attr-defined]
    return stored if asked == stored else None


async def save_rule(conn: Conn, rule: pb.Rule, actor: str = "") -> pb.Rule:
    """Store a new version of the rule (kept forever in rule_versions) unless it is the same
    as the latest; return it as stored."""
    latest = await conn.fetchrow(
        "SELECT version, definition FROM rule_versions WHERE rule_id = $1 "
        "ORDER BY version DESC LIMIT 1",
        rule.rule_id,
    )
    same = unchanged(latest, rule)
    if same is not None:
        return same
    version = (latest["version"] if latest else 0) + 1
    stored = pb.Rule()
    stored.CopyFrom(rule)
    stored.version = version
    definition = stored.SerializeToString()
    await conn.execute(
        """
        WITH kept AS (
            INSERT INTO rule_versions (rule_id, version, definition, actor)
            VALUES ($1, $4, $5, $6)
        )
        INSERT INTO rules (rule_id, event_type, enabled, version, definition)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (rule_id) DO UPDATE SET event_type = EXCLUDED.event_type,
            enabled = EXCLUDED.enabled, version = EXCLUDED.version,
            definition = EXCLUDED.definition, updated_at = now()
        """,
        rule.rule_id,
        pb.EventType.Name(rule.event_type),
        rule.enabled,
        version,
        definition,
        actor,
    )
    return stored


async def save_cap_group(conn: Conn, name: str, daily_cap: int) -> None:
    await conn.execute(
        "INSERT INTO cap_groups (name, daily_cap) VALUES ($1, $2) "
        "ON CONFLICT (name) DO UPDATE SET daily_cap = EXCLUDED.daily_cap",
        name,
        daily_cap,
    )


async def new_version(conn: Conn, kind: str, key: str, message: M, actor: str = "") -> M:
    """Keep a new version of a campaign, tier or budget unless it is the same as the latest;
    return it with its version set."""
    await lock_for_transaction(conn, f"points.rules.{kind}.{key}")
    latest = await conn.fetchrow(
        "SELECT version, definition FROM config_versions WHERE kind = $1 AND id = $2 "
        "ORDER BY version DESC LIMIT 1",
        kind,
        key,
    )
    same = unchanged(latest, message)
    if same is not None:
        return same
    version = (latest["version"] if latest else 0) + 1
    stored = type(message)()
    stored.CopyFrom(message)
    stored.version = version  # type: ignore[attr-defined]
    await conn.execute(
        "INSERT INTO config_versions (kind, id, version, definition, actor) "
        "VALUES ($1, $2, $3, $4, $5)",
        kind,
        key,
        version,
        stored.SerializeToString(),
        actor,
    )
    return stored


async def versions(conn: Conn, kind: str, key: str, before: int | None, limit: int) -> list[Record]:
    """Versions of a rule ('rule') or a campaign, tier or budget, newest first, below
    `before` when given: (version, created_at, actor, definition)."""
    if kind == "rule":
        query = """
            SELECT version, created_at, actor, definition FROM rule_versions
            WHERE rule_id = $1 AND ($2::int IS NULL OR version < $2)
            ORDER BY version DESC LIMIT $3
        """
        args: tuple[object, ...] = (key, before, limit)
    else:
        query = """
            SELECT version, created_at, actor, definition FROM config_versions
            WHERE kind = $4 AND id = $1 AND ($2::int IS NULL OR version < $2)
            ORDER BY version DESC LIMIT $3
        """
        args = (key, before, limit, kind)
    return list(await conn.fetch(query, *args))


async def save_campaign(conn: Conn, campaign: pb.Campaign) -> None:
    await conn.execute(
        """
        INSERT INTO campaigns (campaign_id, enabled, starts_at, ends_at, definition)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (campaign_id) DO UPDATE SET enabled = EXCLUDED.enabled,
            starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
            definition = EXCLUDED.definition, updated_at = now()
        """,
        campaign.campaign_id,
        campaign.enabled,
        campaign.start_time.ToDatetime(tzinfo=UTC),
        campaign.end_time.ToDatetime(tzinfo=UTC),
        campaign.SerializeToString(),
    )


async def all_campaigns(conn: Conn) -> list[pb.Campaign]:
    rows = await conn.fetch("SELECT definition FROM campaigns ORDER BY campaign_id")
    return [pb.Campaign.FromString(r["definition"]) for r in rows]


async def save_budget(conn: Conn, budget: pb.Budget) -> None:
    await conn.execute(
        """
        INSERT INTO budgets (budget_id, definition, global) VALUES ($1, $2, $3)
        ON CONFLICT (budget_id) DO UPDATE SET definition = EXCLUDED.definition,
            global = EXCLUDED.global, updated_at = now()
        """,
        budget.budget_id,
        budget.SerializeToString(),
        budget.applies_to_all,
    )


async def delete_budget(conn: Conn, budget_id: str) -> bool:
    """Delete a budget (its trigger bumps the configuration's generation); False if absent."""
    deleted = await conn.fetchval(
        "DELETE FROM budgets WHERE budget_id = $1 RETURNING true", budget_id
    )
    return bool(deleted)


async def all_budgets(conn: Conn) -> list[pb.Budget]:
    rows = await conn.fetch("SELECT definition FROM budgets ORDER BY budget_id")
    return [pb.Budget.FromString(r["definition"]) for r in rows]


async def save_tier(conn: Conn, tier: pb.Tier) -> None:
    await conn.execute(
        """
        INSERT INTO tiers (tier_id, min_points_12m, definition) VALUES ($1, $2, $3)
        ON CONFLICT (tier_id) DO UPDATE SET min_points_12m = EXCLUDED.min_points_12m,
            definition = EXCLUDED.definition
        """,
        tier.tier_id,
        tier.min_points_12m,
        tier.SerializeToString(),
    )


async def all_tiers(conn: Conn) -> list[pb.Tier]:
    rows = await conn.fetch("SELECT definition FROM tiers ORDER BY min_points_12m, tier_id")
    return [pb.Tier.FromString(r["definition"]) for r in rows]
