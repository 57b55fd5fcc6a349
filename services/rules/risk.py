"""Risk on request (CheckRisk, which the mall asks before a spend) and the blacklist that
denies a user, a device or an IP outright. The decision itself is `evaluator.assess`."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from asyncpg import Record

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.validation import Checker
from services.rules.config import RulesConfig
from services.rules.evaluator import Risk, assess
from services.rules.repository import risk as risk_repo


async def check(
    pool: asyncpg.Pool, config: RulesConfig, user_id: str, device_id: str, ip: str, action: str
) -> Risk:
    c = Checker()
    c.user_id(user_id)
    c.identifier("device_id", device_id, 128, required=False)
    c.identifier("ip", ip, 128, required=False)
    c.text("action", action, 64, required=False)
    c.done()
    async with pool.acquire() as conn:
        return await assess(conn, config, user_id, device_id, ip)


def blacklist_kind(kind: int, value: str) -> str:
    """The stored kind (USER, DEVICE or IP) of a blacklist entry, checked with its value."""
    c = Checker()
    c.require(kind != pb.BLACKLIST_KIND_UNSPECIFIED, "kind", "must be USER, DEVICE or IP")
    c.identifier("value", value, 128)
    c.done()
    return pb.BlacklistKind.Name(kind).removeprefix("BLACKLIST_KIND_")  # type: ignore[arg-type]


async def add(
    pool: asyncpg.Pool, kind: int, value: str, reason: str, expires_at: datetime | None
) -> None:
    stored = blacklist_kind(kind, value)
    c = Checker()
    c.text("reason", reason, 500, required=False)
    c.done()
    async with pool.acquire() as conn:
        await risk_repo.save_blacklist(conn, stored, value, reason, expires_at)


async def remove(pool: asyncpg.Pool, kind: int, value: str) -> bool:
    stored = blacklist_kind(kind, value)
    async with pool.acquire() as conn:
        return await risk_repo.delete_blacklist(conn, stored, value)


async def entries(pool: asyncpg.Pool) -> list[Record]:
    async with pool.acquire() as conn:
        return await risk_repo.blacklist(conn)
