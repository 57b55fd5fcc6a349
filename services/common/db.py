"""The asyncpg pool, waiting for the database to come up (compose starts everything at once)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

# A connection, whether held directly or borrowed from a pool.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

CONNECT_ERRORS = (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)

# Every statement of the services is prepared once per connection (asyncpg's cache) and run
# with parameters: member ids, request ids, arrays to unnest. Left to choose, PostgreSQL plans
# many of them afresh on every execution (a custom plan), and planning cost more than running:
# about 1 ms against 0.25 ms for a balance read. A generic plan is made once per connection.
# Measured (bench/budget.py): PostgreSQL CPU per GetBalance 0.58 -> 0.24 ms, per RecordEvent
# 3.4 -> 2.0 ms. Partitioned tables are still pruned at run time under generic plans.
SESSION_SETTINGS = {"plan_cache_mode": "force_generic_plan"}


async def create_pool(
    url: str,
    *,
    schema: str,
    application_name: str,
    min_size: int = 2,
    max_size: int = 20,
    wait_seconds: float = 30.0,
    mode: str = "session",
) -> asyncpg.Pool:
    """A pool whose connections resolve unqualified names in the service's own schema.

    `mode` "transaction": the URL is a transaction-pooling PgBouncer, where consecutive
    transactions may run on different server connections. Prepared statements are then not
    kept (each is prepared in the transaction that runs it) and no startup setting is sent:
    the pooler's database alias sets the schema and plans for its server connections
    (scripts/pooler.py), which is checked here."""
    deadline = time.monotonic() + wait_seconds
    pooled = mode == "transaction"
    settings = {"application_name": application_name}
    if not pooled:
        settings |= {"search_path": schema, **SESSION_SETTINGS}
    while True:
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                server_settings=settings,
                reset=_keep_session,
                statement_cache_size=0 if pooled else 100,
            )
            if pooled:
                await _check_pooled_schema(pool, schema)
            return pool
        except CONNECT_ERRORS as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("database not reachable yet, retrying", extra={"error": str(exc)})
            await asyncio.sleep(0.5)


async def _check_pooled_schema(pool: asyncpg.Pool, schema: str) -> None:
    found = await pool.fetchval("SELECT current_setting('search_path')")
    if found != schema:
        await pool.close()
        raise RuntimeError(
            f"DB_POOL_MODE=transaction: the pooler's database must set search_path to {schema} "
            f"on its server connections (it is {found!r}; see scripts/pooler.py)"
        )


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Release a connection without asyncpg's default reset query (a round trip per release,
    ~10% of a request here). asyncpg still rolls back an open transaction first; the services
    leave no other session state on pooled connections: no LISTEN (watchers have their own
    connection), no SET (only SET LOCAL) and no advisory lock held past its release."""


# Advisory locks, keyed by a readable name ("points.<what>.<which>") hashed to PostgreSQL's
# 64-bit key: the one spelling of a lock, so two places that mean one lock take the same one.
async def lock_for_transaction(conn: Conn, name: str) -> None:
    """Wait for the lock `name`; it is held until this transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", name)


async def try_lock_for_transaction(conn: Conn, name: str) -> bool:
    """Take the lock `name` until this transaction ends, or return False at once if taken."""
    return bool(
        await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", name)
    )


async def try_lock_for_session(conn: Conn, name: str) -> bool:
    """Take the lock `name` until `unlock_session`; never on a pooled connection (see
    `_keep_session`)."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", name))


async def unlock_session(conn: Conn, name: str) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", name)


async def current_time(conn: Conn) -> datetime:
    """The database's clock (the transaction's start, inside one): deadlines and expiries are
    judged by it, not by ours."""
    now: datetime = await conn.fetchval("SELECT now()")
    return now


async def database_time(pool: asyncpg.Pool) -> datetime:
    async with pool.acquire() as conn:
        return await current_time(conn)
