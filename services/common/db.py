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


async def create_pool(
    url: str,
    *,
    schema: str,
    application_name: str,
    min_size: int = 2,
    max_size: int = 20,
    wait_seconds: float = 30.0,
) -> asyncpg.Pool:
    """A pool whose connections resolve unqualified names in the service's own schema."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                server_settings={"search_path": schema, "application_name": application_name},
            )
            return pool
        except CONNECT_ERRORS as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("database not reachable yet, retrying", extra={"error": str(exc)})
            await asyncio.sleep(0.5)


async def database_time(pool: asyncpg.Pool) -> datetime:
    """The database's clock: deadlines and expiries are judged by it, not by ours."""
    async with pool.acquire() as conn:
        now: datetime = await conn.fetchval("SELECT now()")
    return now
