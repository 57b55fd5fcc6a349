"""Risk signals and the blacklist. Functions run inside the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asyncpg import Record

from services.common.db import Conn


@dataclass(frozen=True)
class RiskSignals:
    blacklisted: list[str]  # kinds (USER, DEVICE, IP) with an active entry matching the event
    recent_events: int  # events recorded for the user in the last minute
    device_accounts: int  # distinct accounts (this one included) on the device in the last day
    ip_accounts: int  # the same for the IP


async def risk_signals(conn: Conn, user_id: str, device_id: str, ip: str) -> RiskSignals:
    """Every signal the risk decision always needs, in one round trip (the function
    `risk_signals`, migration 0017)."""
    row = await conn.fetchrow("SELECT * FROM risk_signals($1, $2, $3)", user_id, device_id, ip)
    assert row is not None
    return signals_of(row)


def signals_of(row: Record) -> RiskSignals:
    """The signals of a row with `risk_signals`' columns."""
    return RiskSignals(
        list(row["blacklisted"]), row["recent"], row["device_accounts"], row["ip_accounts"]
    )


async def save_blacklist(
    conn: Conn, kind: str, value: str, reason: str, expires_at: datetime | None
) -> None:
    await conn.execute(
        """
        INSERT INTO blacklist (kind, value, reason, expires_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT (kind, value)
        DO UPDATE SET reason = EXCLUDED.reason, expires_at = EXCLUDED.expires_at
        """,
        kind,
        value,
        reason,
        expires_at,
    )


async def delete_blacklist(conn: Conn, kind: str, value: str) -> bool:
    deleted = await conn.fetchval(
        "DELETE FROM blacklist WHERE kind = $1 AND value = $2 RETURNING true", kind, value
    )
    return bool(deleted)


async def blacklist(conn: Conn) -> list[Record]:
    return list(
        await conn.fetch(
            "SELECT * FROM blacklist WHERE expires_at IS NULL OR expires_at > now() "
            "ORDER BY kind, value LIMIT 10000"
        )
    )


async def invites_today(conn: Conn, referrer_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM referrals "
        "WHERE referrer_id = $1 AND created_at > now() - interval '1 day'",
        referrer_id,
    )
    return count


async def refunds_this_month(conn: Conn, user_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM events WHERE user_id = $1 AND event_type = 'EVENT_TYPE_REFUND' "
        "AND recorded_at > now() - interval '30 days'",
        user_id,
    )
    return count
