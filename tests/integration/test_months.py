"""Monthly partitions: the outbox's, made ahead by the migration and the job and dropped whole
once past the retention and fully handed on; the ledger's transfers and the rules service's
events, turned monthly with every row kept; a default partition catching the rest."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.common import outbox, partitions
from services.common.migrations import Migration, load_migrations, migrate
from services.common.server import ServiceSpec
from services.ledger.server import SPEC as LEDGER
from services.rules.repository.reviews import WAITING_FOR_REVIEW
from services.rules.server import SPEC as RULES


@pytest.fixture
async def conn(private_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(private_database, server_settings={"search_path": "ledger"})
    try:
        assert LEDGER.migrations_dir is not None
        await migrate(connection, "ledger", load_migrations(LEDGER.migrations_dir))
        yield connection
    finally:
        await connection.close()


async def months_of(conn: asyncpg.Connection, table: str = "outbox") -> list[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = $1::regclass ORDER BY 1",
        table,
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
        conn, "outbox", datetime(2030, 3, 5, tzinfo=UTC), keep_while="p.published_at IS NULL"
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
    assert outbox.envelope(row, "rules")["member_id"] is None


@asynccontextmanager
async def upgrading(
    url: str, spec: ServiceSpec, before: int
) -> AsyncIterator[tuple[asyncpg.Connection, asyncpg.Pool, list[Migration]]]:
    """A connection and a pool in `spec`'s schema, migrated up to (not including) `before`;
    with every migration of the service, for the test to apply the rest."""
    assert spec.migrations_dir is not None
    every = load_migrations(spec.migrations_dir)
    search = {"search_path": spec.name}
    conn = await asyncpg.connect(url, server_settings=search)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1, server_settings=search)
    try:
        await migrate(conn, spec.name, [m for m in every if m.version < before])
        yield conn, pool, every
    finally:
        await pool.close()
        await conn.close()


TRANSFER = (
    "INSERT INTO transfers (user_id, kind, debit_account, credit_account, amount, request_id, "
    "created_at) VALUES ($1, 'EARN', 'issuance:t', 'member', 5, $1, $2) RETURNING transfer_id"
)


async def test_transfers_turn_monthly_with_every_row_kept(private_database: str) -> None:
    async with upgrading(private_database, LEDGER, before=9) as (conn, pool, every):
        now = await conn.fetchval("SELECT now()")
        before = [await conn.fetchval(TRANSFER, f"old-{n}", now) for n in range(3)]
        upgrade = [m for m in every if m.version <= 12]
        assert await migrate(conn, "ledger", upgrade) == [9, 10, 11, 12]
        # Nothing copied: the table is the first partition, and ids go on from the last one.
        assert await months_of(conn, "transfers") == [
            "transfers_before_months",
            "transfers_default",
        ]
        after = await conn.fetchval(TRANSFER, "new", now)
        assert after == max(before) + 1
        old = await conn.fetch("SELECT tableoid::regclass::text AS part FROM transfers")
        assert {r["part"] for r in old} == {"transfers_before_months"}
        # The job makes the months from the old table's bound on; a transfer in one lands there.
        await partitions.keep(pool, "transfers")
        made = [m for m in await months_of(conn, "transfers") if m[-7:-3].isdigit()]
        assert made, "months from the bound on"
        ahead = datetime.combine(partitions.month(now, 3), datetime.min.time(), UTC)
        await conn.fetchval(TRANSFER, "ahead", ahead + timedelta(days=2))
        where = await conn.fetchval(
            "SELECT tableoid::regclass::text FROM transfers WHERE user_id = 'ahead'"
        )
        assert where == partitions.partition_name("transfers", partitions.month(now, 3))
        assert await conn.fetchval("SELECT count(*) FROM transfers_default") == 0


EVENT = (
    "INSERT INTO events (user_id, event_id, event_type, payload_sha256, response, occurred_at, "
    "recorded_at, decision) VALUES ($1, $2, 'EVENT_TYPE_LIKE', '', '', $3, $3, $4)"
)


async def test_events_turn_monthly_and_old_months_go_unless_a_review_waits(
    private_database: str,
) -> None:
    async with upgrading(private_database, RULES, before=12) as (conn, pool, every):
        now = await conn.fetchval("SELECT now()")
        await conn.execute(EVENT, "m-1", "e-old", now, "ALLOW")
        upgrade = [m for m in every if m.version <= 15]
        assert await migrate(conn, "rules", upgrade) == [12, 13, 14, 15]
        assert await months_of(conn, "events") == ["events_before_months", "events_default"]
        await partitions.keep(pool, "events")
        assert len(await months_of(conn, "events")) > 2  # months from the bound on
        # Two old months: one holds an event whose award waits for review, and stays.
        await partitions.ensure_months(conn, "events", datetime(2030, 1, 15, tzinfo=UTC))
        await conn.execute(EVENT, "m-1", "e-review", datetime(2030, 1, 20, tzinfo=UTC), "REVIEW")
        await conn.execute(
            "INSERT INTO awards (user_id, event_id, rule_id, points, review) "
            "VALUES ('m-1', 'e-review', 'like', 1, 'PENDING')"
        )
        await conn.execute(EVENT, "m-1", "e-allowed", datetime(2030, 2, 20, tzinfo=UTC), "ALLOW")
        dropped = await partitions.drop_months_before(
            conn,
            "events",
            datetime(2030, 3, 5, tzinfo=UTC),
            keep_while=WAITING_FOR_REVIEW,
        )
        assert "events_2030_02" in dropped and "events_2030_01" not in dropped
        kept = await conn.fetch("SELECT event_id FROM events ORDER BY recorded_at")
        assert [r["event_id"] for r in kept] == ["e-old", "e-review"]
