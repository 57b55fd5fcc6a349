"""Program-wide settings of the rules service, read from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from loyalty.common.v1 import common_pb2
from services.common.settings import Env, SettingsError


@dataclass(frozen=True)
class RulesConfig:
    zone: ZoneInfo  # calendar days (check-ins, daily caps) are days in this zone
    velocity_per_minute: int  # this many events from one user in a minute: DENY
    review_per_minute: int  # this many: REVIEW (a burst, short of the DENY threshold)
    accounts_per_device: int  # this many accounts on one device in a day: REVIEW
    accounts_per_ip: int  # this many accounts from one IP in a day: REVIEW
    invites_per_day: int  # a referrer inviting this many in a day: their invitees' events REVIEW
    refunds_per_month: int  # a user with this many refunds in 30 days: their purchases REVIEW
    max_event_age: timedelta  # older events are refused (late ingestion window)
    settle_seconds: float  # how often unsettled awards are retried against the ledger
    # Months of events older than this are dropped (None: kept); at least the late-ingestion
    # window plus a month, so a replayed event is always recognised.
    event_retention: timedelta | None
    max_multiplier_percent: int  # campaigns stack up to this combined multiplier
    currency: str  # the program's currency, for costs and issuance ratios
    points_per_major_unit: int  # the point value: e.g. 100 points = 1 yuan
    # How often experiments past their end or budget conclude, and adaptive ones reallocate.
    experiment_seconds: float = 3600.0

    def cost(self, points: int) -> common_pb2.Money:
        """What points cost at the program's point value."""
        return common_pb2.Money(
            amount_minor=points * 100 // self.points_per_major_unit, currency=self.currency
        )

    @classmethod
    def from_env(cls, source: Mapping[str, str] | None = None) -> RulesConfig:
        env = Env(source)
        zone = env.zone("RULES_TIMEZONE", "Asia/Shanghai")
        return cls(
            zone=zone,
            velocity_per_minute=env.integer("RULES_VELOCITY_PER_MINUTE", 30, minimum=1),
            review_per_minute=env.integer("RULES_REVIEW_PER_MINUTE", 20, minimum=1),
            accounts_per_device=env.integer("RULES_ACCOUNTS_PER_DEVICE", 3, minimum=2),
            accounts_per_ip=env.integer("RULES_ACCOUNTS_PER_IP", 20, minimum=2),
            invites_per_day=env.integer("RULES_INVITES_PER_DAY", 10, minimum=1),
            refunds_per_month=env.integer("RULES_REFUNDS_PER_MONTH", 3, minimum=1),
            max_event_age=timedelta(days=env.integer("RULES_MAX_EVENT_AGE_DAYS", 7, minimum=1)),
            settle_seconds=env.number("RULES_SETTLE_SECONDS", 5.0, minimum=0.1),
            event_retention=_event_retention(env),
            max_multiplier_percent=env.integer(
                "RULES_MAX_MULTIPLIER_PERCENT", 300, minimum=100, maximum=10_000
            ),
            currency=env.text("RULES_CURRENCY", "CNY"),
            points_per_major_unit=env.integer("RULES_POINTS_PER_MAJOR_UNIT", 100, minimum=1),
            experiment_seconds=env.number("RULES_EXPERIMENT_SECONDS", 3600.0, minimum=0.1),
        )


def _event_retention(env: Env) -> timedelta | None:
    days = env.integer("RULES_EVENT_RETENTION_DAYS", 0)
    floor = env.integer("RULES_MAX_EVENT_AGE_DAYS", 7, minimum=1) + 31
    if days and days < floor:
        raise SettingsError(
            f"RULES_EVENT_RETENTION_DAYS must be 0 (keep every month) or at least {floor} "
            f"(the late-ingestion window and a month), got {days}"
        )
    return timedelta(days=days) if days else None
