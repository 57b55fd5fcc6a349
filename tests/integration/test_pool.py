"""The services' pool skips asyncpg's reset query but still never hands out a connection
with a transaction left open by its previous borrower."""

import asyncio

import pytest

from services.common.db import create_pool


async def test_released_connection_has_no_open_transaction(database_url: str) -> None:
    pool = await create_pool(
        database_url, schema="public", application_name="t", min_size=1, max_size=1
    )
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_behind (n int)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_current_xact_id_if_assigned()") is None
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_behind')") is None
    finally:
        await pool.close()


async def test_cancelled_borrower_leaves_nothing_locked(database_url: str) -> None:
    pool = await create_pool(
        database_url, schema="public", application_name="t", min_size=1, max_size=1
    )
    try:

        async def hold_lock() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(4242)")
                await asyncio.sleep(10)

        task = asyncio.create_task(hold_lock())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_try_advisory_xact_lock(4242)") is True
    finally:
        await pool.close()
