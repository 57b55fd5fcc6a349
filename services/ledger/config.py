"""Ledger policy settings (expiry policy, refund grace, time zone) read from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.common.settings import Env, SettingsError

_DAYS = re.compile(r"^days:(\d{1,5})$")


@dataclass(frozen=True)
class ExpiryPolicy:
    """Default lot expiry: a fixed number of days, or the end of the following calendar year."""

    days: int | None  # None means "end of the following calendar year"
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str, zone: ZoneInfo) -> ExpiryPolicy:
        if text == "end_of_next_year":
            return cls(None, zone)
        match = _DAYS.match(text)
        if match is None or int(match[1]) == 0:
            raise SettingsError(
                "LEDGER_EXPIRY_POLICY must be 'days:N' (N >= 1) or 'end_of_next_year', "
                f"got {text!r}"
            )
        return cls(int(match[1]), zone)

    def expires_at(self, credited_at: datetime) -> datetime:
        if self.days is not None:
            return credited_at + timedelta(days=self.days)
        local = credited_at.astimezone(self.zone)
        return datetime(local.year + 2, 1, 1, tzinfo=self.zone)  # first instant after next year


@dataclass(frozen=True)
class LedgerConfig:
    expiry: ExpiryPolicy
    refund_grace: timedelta  # expiry given to refunded points whose original lot already expired
    zone: ZoneInfo  # for grouping "expiring soon" by date
    hold_sweep_seconds: float
    write_queue_limit: int  # single writes waiting for group commit; more are OVERLOADED
    expiry_sweep_seconds: float  # how often due lots are expired (0: never, by schedule)
    expiring_soon: timedelta | None  # how long before expiry a lot is announced (None: never)
    notice_seconds: float  # how often lots due an "expiring soon" or "matured" event are sought

    @classmethod
    def from_env(cls, source: Mapping[str, str] | None = None) -> LedgerConfig:
        env = Env(source)
        zone = env.zone("LEDGER_TIMEZONE", "Asia/Shanghai")
        soon_days = env.number("LEDGER_EXPIRING_SOON_DAYS", 7.0)  # 0: no "expiring soon"
        return cls(
            expiry=ExpiryPolicy.parse(env.text("LEDGER_EXPIRY_POLICY", "days:365"), zone),
            refund_grace=timedelta(days=env.integer("LEDGER_REFUND_GRACE_DAYS", 30, minimum=1)),
            zone=zone,
            hold_sweep_seconds=env.number("LEDGER_HOLD_SWEEP_SECONDS", 5.0, minimum=0.1),
            write_queue_limit=env.integer(
                "LEDGER_WRITE_QUEUE_LIMIT", 4096, minimum=1, maximum=1_000_000
            ),
            expiry_sweep_seconds=env.number("LEDGER_EXPIRY_SWEEP_SECONDS", 3600.0),
            expiring_soon=timedelta(days=soon_days) if soon_days else None,
            notice_seconds=env.number("LEDGER_NOTICE_SECONDS", 60.0, minimum=0.05),
        )
