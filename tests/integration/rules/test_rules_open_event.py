"""The function an event's transaction opens with (rules migration 0017): the member locked,
then reads that see what the member's previous event committed while this one waited."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.common.server import ServiceHost
from services.rules.repository import events as events_repo

SETTINGS = {"search_path": "rules"}  # the rules service's schema (created by its host)
DAY = ("rule:like", "day:2026-01-05")
LIFE = ("rule:like", "life")


@pytest.fixture
async def two(
    database_url: str, rules_host: ServiceHost
) -> AsyncIterator[list[asyncpg.Connection]]:
    conns = [await asyncpg.connect(database_url, server_settings=SETTINGS) for _ in range(2)]
    yield conns
    for conn in conns:
        await conn.close()


async def waiting_for_a_lock(conn: asyncpg.Connection, pid: int) -> None:
    """Return once backend `pid` waits for a lock (asked of the database again and again)."""
    waiting = False
    while not waiting:
        waiting = await conn.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        )


async def test_reads_see_what_the_lock_holder_committed(two: list[asyncpg.Connection]) -> None:
    first, second = two
    user = f"open-{uuid.uuid4().hex[:8]}"
    asked = events_repo.Asked(counters=[DAY, LIFE], streak_rules=["checkin", "other"])
    async with first.transaction():
        await events_repo.open_event(first, user, "e1", "", "", asked)
        await first.execute(
            "INSERT INTO counters (user_id, scope, period, points) VALUES ($1, $2, $3, 7)",
            user,
            *DAY,
        )
        await first.execute(
            "INSERT INTO streaks (user_id, rule_id, last_day, length) VALUES ($1, 'checkin', "
            "'2026-01-05', 3)",
            user,
        )
        opening = asyncio.create_task(events_repo.open_event(second, user, "e2", "", "", asked))
        await waiting_for_a_lock(first, second.get_server_pid())
    row = await opening
    assert row["counted"] == [7, 0]  # committed while it waited; a missing counter reads 0
    assert row["streak_rules"] == ["checkin"]  # a streak with no row is left out
    assert row["streak_lengths"] == [3]
    assert row["prior_sha256"] is None
    assert row["blacklisted"] == [] and row["recent"] == 0


async def test_a_replay_reads_its_answer_and_nothing_else(two: list[asyncpg.Connection]) -> None:
    conn = two[0]
    user = f"open-{uuid.uuid4().hex[:8]}"
    await conn.execute(
        "INSERT INTO events (user_id, event_id, event_type, payload_sha256, response, "
        "occurred_at) VALUES ($1, 'seen', 'EVENT_TYPE_LIKE', '\\x01', '\\x02', now())",
        user,
    )
    row = await events_repo.open_event(
        conn, user, "seen", "", "", events_repo.Asked(counters=[DAY])
    )
    assert (bytes(row["prior_sha256"]), bytes(row["prior_response"])) == (b"\x01", b"\x02")
    assert row["counted"] is None and row["blacklisted"] is None
    fresh = await events_repo.open_event(conn, user, "new", "", "", events_repo.Asked())
    assert fresh["prior_sha256"] is None
    assert fresh["counted"] is None  # nothing asked, nothing read
    assert fresh["since"] == row["since"]  # the member, created by the first call, stays
