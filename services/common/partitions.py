"""Monthly range partitions of a table (`<table>_YYYY_MM`, bounds in UTC), created months
ahead and dropped when their month has passed the retention.

A table partitioned this way also has a DEFAULT partition, the safety net for a row whose month
has no partition yet (the job creating them was down for months): writes never fail for want
of a partition. The job keeps this month's partition and the next MONTHS_AHEAD ones; it makes
a month's partition once that month has begun only when it is missing (a first start, or the
job was down), and if the default partition already holds rows of that month, PostgreSQL
refuses the new partition: those rows stay in the default partition (logged), and the months
after it are still made.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from services.common.db import Conn, current_time

log = logging.getLogger(__name__)

MONTHS_AHEAD = 3
# Creating or dropping a partition locks its parent for a moment; if a long transaction holds
# the parent, give up (the job tries again) rather than queue every writer behind the wait.
LOCK_TIMEOUT = "2s"
_NAME = re.compile(r"^[a-z_]+$")


def month(moment: datetime, months_later: int = 0) -> date:
    """The first day of the month `months_later` months after `moment`'s (in UTC)."""
    utc = moment.astimezone(UTC)
    index = utc.year * 12 + utc.month - 1 + months_later
    return date(index // 12, index % 12 + 1, 1)


def partition_name(table: str, first_day: date) -> str:
    return f"{table}_{first_day:%Y_%m}"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


async def keep(
    pool: asyncpg.Pool,
    table: str,
    retention: timedelta | None = None,
    keep_while: str | None = None,
) -> None:
    """One pass of a partitioned table's job: months made ahead and, with a `retention`, the
    months past it dropped (see `drop_months_before` for `keep_while`)."""
    async with pool.acquire() as conn:
        now = await current_time(conn)
        await ensure_months(conn, table, now)
        if retention is not None:
            await drop_months_before(conn, table, now - retention, keep_while)


async def ensure_months(conn: Conn, table: str, now: datetime) -> list[str]:
    """Create this month's partition and the next MONTHS_AHEAD ones where missing; returns the
    partitions created."""
    _check(table)
    existing = set(await _partitions(conn, table))
    created = []
    for ahead in range(MONTHS_AHEAD + 1):
        start, end = month(now, ahead), month(now, ahead + 1)
        name = partition_name(table, start)
        if name in existing:
            continue
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES "
                    f"FROM ('{_midnight(start).isoformat()}') TO ('{_midnight(end).isoformat()}')"
                )
        except asyncpg.InvalidObjectDefinitionError:
            continue  # another partition covers the month (a table's rows before its months)
        except asyncpg.CheckViolationError:
            # The month's rows already went to the default partition (the job was down that
            # long): they stay there, and the months after it are still made.
            log.warning("month left in the default partition", extra={"partition": name})
            continue
        created.append(name)
    return created


async def drop_months_before(
    conn: Conn, table: str, before: datetime, keep_while: str | None = None
) -> list[str]:
    """Drop the monthly partitions whose month ended at or before `before`, except those where
    `keep_while` (a condition on their rows, alias `p`, e.g. "p.published_at IS NULL") finds a
    row; returns the partitions dropped."""
    _check(table)
    dropped = []
    for name in await _partitions(conn, table):
        first_day = _first_day(table, name)
        if first_day is None:  # the default partition stays
            continue
        if _midnight(month(_midnight(first_day), 1)) > before:  # its month has not ended
            continue
        if keep_while and await conn.fetchval(
            f"SELECT EXISTS (SELECT FROM {name} AS p WHERE {keep_while})"
        ):
            continue
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            await conn.execute(f"ALTER TABLE {table} DETACH PARTITION {name}")
            await conn.execute(f"DROP TABLE {name}")
        dropped.append(name)
    return dropped


async def _partitions(conn: Conn, table: str) -> list[str]:
    """The partitions of `table` (in the session's schema), by name."""
    rows = await conn.fetch(
        """
        SELECT c.relname FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = to_regclass($1)
        ORDER BY 1
        """,
        table,
    )
    return [r["relname"] for r in rows]


def _first_day(table: str, name: str) -> date | None:
    found = re.fullmatch(rf"{table}_(\d{{4}})_(\d{{2}})", name)
    return date(int(found[1]), int(found[2]), 1) if found else None  # None: the default


def _check(table: str) -> None:
    if not _NAME.match(table):
        raise ValueError(f"not a table name: {table!r}")
