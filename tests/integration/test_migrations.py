import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from grpc_health.v1 import health_pb2

from services.common.migrations import Migration, MigrationError, load_migrations, migrate
from services.ledger.server import SPEC as LEDGER
from tests.support.hosts import free_port, health_status, spawn, wait_serving

MIGRATIONS = [
    Migration(1, "accounts", "CREATE TABLE accounts (id bigint PRIMARY KEY);"),
    Migration(2, "balance", "ALTER TABLE accounts ADD COLUMN balance bigint NOT NULL DEFAULT 0;"),
    Migration(3, "slow", "SELECT pg_sleep(0.2);"),
]


def _schema() -> str:
    return f"m_{uuid.uuid4().hex[:10]}"


async def test_applies_once_and_records(database_url: str) -> None:
    schema = _schema()
    conn = await asyncpg.connect(database_url)
    try:
        assert await migrate(conn, schema, MIGRATIONS) == [1, 2, 3]
        assert await migrate(conn, schema, MIGRATIONS) == []
        rows = await conn.fetch(f"SELECT version, name FROM {schema}.schema_migrations ORDER BY 1")
        assert [(r["version"], r["name"]) for r in rows] == [
            (1, "accounts"),
            (2, "balance"),
            (3, "slow"),
        ]
        await conn.execute(f"INSERT INTO {schema}.accounts (id) VALUES (1)")
        assert await conn.fetchval(f"SELECT balance FROM {schema}.accounts") == 0
    finally:
        await conn.close()


async def test_two_concurrent_runners_do_not_collide(database_url: str) -> None:
    schema = _schema()
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        applied = await asyncio.gather(
            migrate(first, schema, MIGRATIONS), migrate(second, schema, MIGRATIONS)
        )
        assert sorted(applied[0] + applied[1]) == [1, 2, 3]
        assert [] in applied  # one runner did everything, the other found nothing to do
        count = await first.fetchval(f"SELECT count(*) FROM {schema}.schema_migrations")
        assert count == 3
    finally:
        await first.close()
        await second.close()


async def test_edited_migration_is_refused(database_url: str) -> None:
    schema = _schema()
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, schema, MIGRATIONS[:1])
        edited = [Migration(1, "accounts", "CREATE TABLE accounts (id text PRIMARY KEY);")]
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, schema, edited)
    finally:
        await conn.close()


async def test_failed_migration_is_not_recorded(database_url: str) -> None:
    schema = _schema()
    conn = await asyncpg.connect(database_url)
    try:
        broken = [*MIGRATIONS[:1], Migration(2, "broken", "ALTER TABLE nope ADD COLUMN x int;")]
        with pytest.raises(asyncpg.UndefinedTableError):
            await migrate(conn, schema, broken)
        assert await conn.fetchval(f"SELECT count(*) FROM {schema}.schema_migrations") == 1
        assert await migrate(conn, schema, MIGRATIONS) == [2, 3]
    finally:
        await conn.close()


def test_loader_orders_files_and_rejects_bad_names(tmp_path: Path) -> None:
    (tmp_path / "0002_second.sql").write_text("SELECT 2;")
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    assert [m.version for m in load_migrations(tmp_path)] == [1, 2]
    (tmp_path / "third.sql").write_text("SELECT 3;")
    with pytest.raises(MigrationError, match="NNNN_description"):
        load_migrations(tmp_path)


async def test_a_no_transaction_migration_builds_an_index_concurrently(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_table.sql").write_text("CREATE TABLE notes (id bigint PRIMARY KEY);\n")
    (tmp_path / "0002_index.sql").write_text(
        "-- points:no-transaction\n-- built without blocking writes\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS notes_odd ON notes (id) WHERE id % 2 = 1;\n"
    )
    migrations = load_migrations(tmp_path)
    assert [m.transactional for m in migrations] == [True, False]
    schema = _schema()
    conn = await asyncpg.connect(database_url)
    try:
        assert await migrate(conn, schema, migrations) == [1, 2]
        valid = await conn.fetchval(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'notes_odd' AND n.nspname = $1",
            schema,
        )
        assert valid is True
        # The session is left as it was: no search path or lock timeout of the migration.
        assert await conn.fetchval("SHOW lock_timeout") == "0"
        assert await migrate(conn, schema, migrations) == []
    finally:
        await conn.close()


async def test_replicas_starting_together_build_an_index_concurrently(
    database_url: str, tmp_path: Path
) -> None:
    # A runner waiting for the lock inside a statement would be a transaction that the
    # holder's CREATE INDEX CONCURRENTLY waits for: a deadlock. Found by two replicas.
    (tmp_path / "0001_table.sql").write_text("CREATE TABLE notes (id bigint PRIMARY KEY);\n")
    (tmp_path / "0002_slow.sql").write_text("SELECT pg_sleep(0.3);\n")
    (tmp_path / "0003_index.sql").write_text(
        "-- points:no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS notes_id ON notes (id);\n"
    )
    migrations = load_migrations(tmp_path)
    schema = _schema()
    runners = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(c, schema, migrations) for c in runners))
        assert sorted(v for versions in applied for v in versions) == [1, 2, 3]
    finally:
        for conn in runners:
            await conn.close()


def test_a_no_transaction_migration_holds_one_statement(tmp_path: Path) -> None:
    (tmp_path / "0001_two.sql").write_text(
        "-- points:no-transaction\nCREATE INDEX CONCURRENTLY a ON t (x);\n"
        "CREATE INDEX CONCURRENTLY b ON t (y);\n"
    )
    with pytest.raises(MigrationError, match="one statement"):
        load_migrations(tmp_path)


async def test_a_replica_told_not_to_migrate_waits_for_the_deploy_step(
    private_database: str,
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {"DATABASE_URL": private_database, "MIGRATE_ON_START": "false"}
    process = spawn("services.ledger.server", {**env, "LEDGER_PORT": str(port)})
    try:
        for _ in range(100):  # up, and NOT_SERVING while the schema is behind
            if await health_status(address) == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            await asyncio.sleep(0.1)
        assert await health_status(address) == health_pb2.HealthCheckResponse.NOT_SERVING
        conn = await asyncpg.connect(private_database)
        try:
            assert not await conn.fetchval("SELECT to_regclass('ledger.transfers') IS NOT NULL")
            assert LEDGER.migrations_dir is not None
            await migrate(conn, "ledger", load_migrations(LEDGER.migrations_dir))  # the Job
        finally:
            await conn.close()
        await wait_serving(address)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)
