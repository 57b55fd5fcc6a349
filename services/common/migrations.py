"""Ordered SQL migrations per service schema, applied once and recorded.

Files are named `NNNN_description.sql` and applied in order, each in its own transaction,
inside the service's schema. A file whose first line is `-- points:no-transaction` runs
outside a transaction, for what PostgreSQL refuses inside one (`CREATE INDEX CONCURRENTLY`,
which builds an index without blocking writes); such a file holds one statement, written to be
re-runnable (`IF NOT EXISTS`), because a failure half-way cannot be rolled back.
A session-level advisory lock per schema serialises concurrent runners (two replicas
starting together): the second waits (asking again, never blocked in a statement), then finds
nothing left to do. An applied file whose
content later changes is an error, never silently re-run.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from services.common.db import Conn, try_lock_for_session, unlock_session

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
NO_TRANSACTION = "-- points:no-transaction"
# A migration waiting this long for a lock gives up (and the service retries on its next
# start) instead of queueing every write to the table behind a long-running transaction.
LOCK_TIMEOUT = "10s"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def transactional(self) -> bool:
        return not self.sql.startswith(NO_TRANSACTION)


def _statements(sql: str) -> list[str]:
    """The statements of a file (split at `;` ending a line; comments dropped)."""
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [part.strip() for part in re.split(r";\s*$", code, flags=re.M) if part.strip()]


def load_migrations(directory: Path) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: migration files are named NNNN_description.sql")
        migration = Migration(int(match[1]), match[2], path.read_text())
        if not migration.transactional and len(_statements(migration.sql)) != 1:
            raise MigrationError(f"{path}: a no-transaction migration holds one statement")
        migrations.append(migration)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a version number")
    return migrations


async def _take_lock(conn: Conn, key: str) -> None:
    """The runners' lock, asked for again every 0.1 s rather than waited for in one statement:
    a waiting statement is a transaction in progress, and `CREATE INDEX CONCURRENTLY` run by
    the holder waits for every such transaction to end (a deadlock between two replicas)."""
    while True:
        if await try_lock_for_session(conn, key):
            return
        await asyncio.sleep(0.1)


async def migrate(conn: Conn, schema: str, migrations: list[Migration]) -> list[int]:
    """Apply what is missing; return the versions applied by this call."""
    if not _SCHEMA.match(schema):
        raise MigrationError(f"invalid schema name {schema!r}")
    lock_key = f"points.migrations.{schema}"
    await _take_lock(conn, lock_key)
    try:
        await conn.execute(
            f"""
            CREATE SCHEMA IF NOT EXISTS {schema};
            CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            );
            """
        )
        rows = await conn.fetch(f"SELECT version, checksum FROM {schema}.schema_migrations")
        applied = {row["version"]: row["checksum"] for row in rows}
        done: list[int] = []
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"{schema} migration {migration.version:04d}_{migration.name} was "
                        "changed after it was applied; add a new migration instead"
                    )
                continue
            if migration.transactional:
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL search_path TO {schema}")
                    await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    await conn.execute(migration.sql)
                    await _record(conn, schema, migration)
            else:
                await conn.execute(
                    f"SET search_path TO {schema}; SET lock_timeout = '{LOCK_TIMEOUT}'"
                )
                try:
                    await conn.execute(_statements(migration.sql)[0])
                finally:
                    await conn.execute("RESET search_path; RESET lock_timeout")
                await _record(conn, schema, migration)
            done.append(migration.version)
        return done
    finally:
        await unlock_session(conn, lock_key)


async def _record(conn: Conn, schema: str, migration: Migration) -> None:
    await conn.execute(
        f"INSERT INTO {schema}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
        migration.version,
        migration.name,
        migration.checksum,
    )


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    applied_at: datetime | None  # None: pending
    changed: bool  # applied, but the file differs from what was applied


async def status(conn: Conn, schema: str, migrations: list[Migration]) -> list[MigrationState]:
    """Each migration of the schema: applied (when) or pending; reads only."""
    if not _SCHEMA.match(schema):
        raise MigrationError(f"invalid schema name {schema!r}")
    table = f"{schema}.schema_migrations"
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
    rows = await conn.fetch(f"SELECT version, checksum, applied_at FROM {table}") if exists else []
    applied = {row["version"]: row for row in rows}
    return [
        MigrationState(
            m,
            applied[m.version]["applied_at"] if m.version in applied else None,
            m.version in applied and applied[m.version]["checksum"] != m.checksum,
        )
        for m in migrations
    ]
