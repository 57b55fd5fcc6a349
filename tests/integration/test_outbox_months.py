"""The outbox's monthly partitions: made ahead by the migration and the job, dropped whole
once past the retention and fully handed on; the default partition catches the rest."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from services.common import outbox, partitions
from services.common.migrations import load_migrations, migrate
from services.ledger.server import SPEC as LEDGER


@pytest.fixture
async def conn(private_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(private_database, server_settings={"search_path": "ledger"})
    try:
        assert LEDGER.migrations_dir is not None
        await migrate(connection, "ledger", load_migrations(LEDGER.migrations_dir))
        yield connection
    finally:
        await connection.close()


def test_months_roll_over_the_year() -> None:
    assert partitions.month(datetime(2026, 11, 26, tzinfo=UTC), 3) == date(2027, 2, 1)
    assert partitions.month(datetime(2027, 1, 1, 3, tzinfo=UTC), -1) == date(2026, 12, 1)
    assert partitions.partition_name("outbox", date(2027, 2, 1)) == "outbox_2027_02"


async def months_of(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'outbox'::regclass ORDER BY 1"
    )
    return [r["relname"] for r in rows]


async def add(conn: asyncpg.Connection, at: str, published: bool) -> None:
    await conn.execute(
        "INSERT INTO outbox (member_id, type, occurred_at, data, published_at) "
        "VALUES ('m-1', 'points.credited', $1::timestamptz, $2, "
        "CASE WHEN $3 THEN now() END)",
        datetime.fromisoformat(at),
        json.dumps({}),
        published,
    )


async def test_the_migration_makes_this_month_and_three_ahead(conn: asyncpg.Connection) -> None:
    now = await conn.fetchval("SELECT now()")
    expected = [partitions.partition_name("outbox", partitions.month(now, n)) for n in range(4)]
    assert await months_of(conn) == sorted([*expected, "outbox_default"])
    assert await partitions.ensure_months(conn, "outbox", now) == []  # nothing missing


async def test_old_months_go_whole_once_handed_on(conn: asyncpg.Connection) -> None:
    later = datetime(2030, 1, 15, tzinfo=UTC)
    made = await partitions.ensure_months(conn, "outbox", later)
    assert made == ["outbox_2030_01", "outbox_2030_02", "outbox_2030_03", "outbox_2030_04"]
    await add(conn, "2030-01-20T10:00:00+00:00", published=False)  # still to hand on
    await add(conn, "2030-02-10T10:00:00+00:00", published=True)
    await add(conn, "2031-06-01T00:00:00+00:00", published=True)  # no month yet: the default
    dropped = await partitions.drop_months_before(
        conn, "outbox", datetime(2030, 3, 5, tzinfo=UTC), keep_while="published_at IS NULL"
    )
    assert "outbox_2030_02" in dropped  # ended March 1st, everything handed on
    assert "outbox_2030_01" not in dropped  # an event still waits in it
    left = await months_of(conn)
    assert {"outbox_2030_01", "outbox_2030_03", "outbox_2030_04", "outbox_default"} <= set(left)
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 2
    assert await conn.fetchval("SELECT count(*) FROM outbox_default") == 1
    # Had the job been down until June 2031, June's event sits in the default partition: June
    # stays there, and the months after it are made.
    made = await partitions.ensure_months(conn, "outbox", datetime(2031, 6, 10, tzinfo=UTC))
    assert made == ["outbox_2031_07", "outbox_2031_08", "outbox_2031_09"]


async def test_keep_months_runs_on_a_pool_and_keeps_what_waits(
    private_database: str, conn: asyncpg.Connection
) -> None:
    await outbox.emit(conn, [outbox.Event("budget.exhausted", None, {"budget_id": "b"})])
    pool = await asyncpg.create_pool(
        private_database, min_size=1, max_size=1, server_settings={"search_path": "ledger"}
    )
    try:
        before = await months_of(conn)
        await outbox.keep_months(pool, retention=timedelta(days=7))
        assert await months_of(conn) == before  # this month waits; months ahead exist
    finally:
        await pool.close()
    row = await conn.fetchrow("SELECT * FROM outbox WHERE type = 'budget.exhausted'")
    assert row is not None and row["member_id"] == ""  # keyed by '' for the whole program
    assert outbox.envelope(row)["member_id"] is None
