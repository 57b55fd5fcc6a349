"""The Citus distribution plan (deploy/citus) holds on plain PostgreSQL: checked from the catalog
of freshly migrated schemas, and from the code for statements that touch several members."""

from __future__ import annotations

import ast
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from services.common.migrations import load_migrations, migrate
from services.ledger.server import SPEC as LEDGER
from services.mall.server import SPEC as MALL
from services.rules.server import SPEC as RULES
from services.webhooks.server import SPEC as WEBHOOKS
from tests.support.databases import fresh_database

ROOT = Path(__file__).resolve().parents[2]
PLAN: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "citus" / "plan.yaml").read_text())
COLUMN = PLAN["distribution_column"]
COLUMNS: dict[str, str] = PLAN.get("distribution_columns", {})


def column(table: str) -> str:
    return str(COLUMNS.get(table, COLUMN))


def tables(kind: str) -> set[str]:
    return {f"{schema}.{t}" for schema, names in PLAN[kind].items() for t in names}


DISTRIBUTED, REFERENCE, LOCAL = tables("distributed"), tables("reference"), tables("local")


@pytest.fixture(scope="module")
async def catalog(server_url: str) -> AsyncIterator[asyncpg.Connection]:
    async with fresh_database(server_url, "points_citus") as url:
        conn = await asyncpg.connect(url)
        try:
            for spec in (LEDGER, RULES, MALL, WEBHOOKS):
                assert spec.migrations_dir is not None
                await migrate(conn, spec.name, load_migrations(spec.migrations_dir))
            yield conn
        finally:
            await conn.close()


async def test_every_table_is_placed_once(catalog: asyncpg.Connection) -> None:
    assert not (DISTRIBUTED & REFERENCE) and not (DISTRIBUTED & LOCAL)
    assert not (REFERENCE & LOCAL)
    found = await catalog.fetch(
        """
        SELECT n.nspname || '.' || c.relname AS name FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = any($1)
        """,
        ["ledger", "rules", "mall", "webhooks"],
    )
    assert {r["name"] for r in found} == DISTRIBUTED | REFERENCE | LOCAL


async def test_every_unique_key_of_a_distributed_table_holds_the_member(
    catalog: asyncpg.Connection,
) -> None:
    # Primary keys, unique constraints and bare unique indexes (partial ones too).
    rows = await catalog.fetch(
        """
        SELECT n.nspname || '.' || t.relname AS name, i.indexrelid::regclass::text AS index,
               array_agg(a.attname::text) AS columns
        FROM pg_index i
        JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = any(i.indkey)
        WHERE i.indisunique
        GROUP BY 1, 2
        """
    )
    checked = [r for r in rows if r["name"] in DISTRIBUTED]
    assert {r["name"] for r in checked} == DISTRIBUTED  # each has a primary key at least
    missing = [r["index"] for r in checked if column(r["name"]) not in r["columns"]]
    assert not missing, f"unique keys without the member: {missing}"


async def test_foreign_keys_keep_citus_rules(catalog: asyncpg.Connection) -> None:
    rows = await catalog.fetch(
        """
        SELECT c.conname, c.conrelid::regclass::text AS source, c.confrelid::regclass::text
               AS target,
               (SELECT array_agg(attname::text) FROM pg_attribute
                WHERE attrelid = c.conrelid AND attnum = any(c.conkey)) AS columns,
               (SELECT array_agg(attname::text) FROM pg_attribute
                WHERE attrelid = c.confrelid AND attnum = any(c.confkey)) AS referenced
        FROM pg_constraint c WHERE c.contype = 'f'
        """
    )
    assert rows, "the webhooks schema has foreign keys: the query must see them"
    for r in rows:
        source, target = _qualified(r["source"]), _qualified(r["target"])
        if source in DISTRIBUTED and target in DISTRIBUTED:
            assert column(source) in r["columns"], r["conname"]
            assert column(target) in r["referenced"], r["conname"]
        assert not (source in REFERENCE and target in DISTRIBUTED), r["conname"]
        assert not (source in DISTRIBUTED | REFERENCE and target in LOCAL), r["conname"]


def _qualified(name: str) -> str:
    return name if "." in name else f"public.{name}"


def test_the_commands_follow_the_plan() -> None:
    sql = (ROOT / "deploy" / "citus" / "distribute.sql").read_text()
    references = set(re.findall(r"create_reference_table\('([\w.]+)'\)", sql))
    distributed = re.findall(
        r"create_distributed_table\('([\w.]+)', '(\w+)'(?:, colocate_with => '([\w.]+)')?\)", sql
    )
    assert references == REFERENCE
    assert {name for name, _, _ in distributed} == DISTRIBUTED
    assert all(by == column(name) for name, by, _ in distributed)
    anchor = PLAN["colocate_with"]
    assert all(colocated == anchor for name, _, colocated in distributed if name != anchor)


# Statements found by how they read: the SQL of each call to the database, with the
# distributed tables it names and whether it pins one member (a `user_id = $n` predicate, or
# a row whose user_id is a parameter). A statement that does not is multi-shard, and its
# function must be in the plan with the reason.
CALLS = {"fetch", "fetchrow", "fetchval", "execute", "executemany", "cursor", "copy_from_query"}
TABLES = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE)\s+([a-z_]+)", re.I)
ONE_MEMBER = re.compile(
    r"\b(?:user_id|member_id)\s*=\s*\$\d"  # WHERE user_id = $1
    r"|INSERT\s+INTO\s+\w+(?:\s+AS\s+\w+)?\s*\(\s*user_id\b[^)]*\)\s*(?:VALUES\s*\(|SELECT)\s*\$\d",
    re.I | re.S,
)


def multi_shard_functions() -> set[str]:
    sources = [
        (set(names), path)
        for schema, names in PLAN["distributed"].items()
        for path in sorted((ROOT / "services" / schema).glob("*.py"))
    ]
    sources.append(({"outbox", "outbox_default"}, ROOT / "services" / "common" / "outbox.py"))
    return {
        f"{path.relative_to(ROOT)}::{function}"
        for names, path in sources
        for function, sql in _statements(path)
        if set(TABLES.findall(sql)) & names and not ONE_MEMBER.search(sql)
    }


def _statements(path: Path) -> list[tuple[str, str]]:
    """(function, SQL) of each call to the database in a module."""
    tree = ast.parse(path.read_text())
    constants = {
        target.id: _strings(node.value, {})
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    return [
        (function.name, _strings(call.args[0], constants))
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for call in ast.walk(function)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr in CALLS
        and call.args
    ]


def _strings(node: ast.AST, constants: dict[str, str]) -> str:
    parts = []
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            parts.append(n.value)
        elif isinstance(n, ast.Name) and n.id in constants:
            parts.append(constants[n.id])
    return " ".join(parts)


def test_every_statement_across_members_is_named_with_its_reason() -> None:
    named: dict[str, str] = PLAN["multi_shard"]
    unnamed = multi_shard_functions() - set(named)
    assert not unnamed, f"touch several members without saying so in plan.yaml: {unnamed}"
    for where, why in named.items():
        path, _, function = where.partition("::")
        source = (ROOT / path).read_text()
        assert re.search(rf"def {function}\(", source), f"{where} does not exist"
        assert len(why.split()) >= 3, where  # a reason, not a label
