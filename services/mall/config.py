"""Mall settings, read from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from services.common.settings import Env


@dataclass(frozen=True)
class CheckoutPolicy:
    """Points-as-cash: e.g. 100 points = 1 yuan, at most 50% of an order, in steps of 100."""

    currency: str
    points_per_major_unit: int  # points worth one major unit (100 minor units)
    max_share_percent: int  # of the order amount
    step_points: int
    min_order_minor: int


@dataclass(frozen=True)
class MallConfig:
    zone: ZoneInfo  # calendar days and months of per-user limits
    hold_seconds: int  # how long a redemption's ledger hold may stay open
    recovery_seconds: float  # how often unfinished sagas are looked for
    recovery_after_seconds: float  # a saga untouched this long is taken over by recovery
    checkout: CheckoutPolicy

    @classmethod
    def from_env(cls, source: Mapping[str, str] | None = None) -> MallConfig:
        env = Env(source)
        zone = env.zone("MALL_TIMEZONE", "Asia/Shanghai")
        return cls(
            zone=zone,
            hold_seconds=env.integer("MALL_HOLD_SECONDS", 600, minimum=10),
            recovery_seconds=env.number("MALL_RECOVERY_SECONDS", 5.0, minimum=0.1),
            recovery_after_seconds=env.number("MALL_RECOVERY_AFTER_SECONDS", 30.0, minimum=0.0),
            checkout=CheckoutPolicy(
                currency=env.text("MALL_CHECKOUT_CURRENCY", "CNY"),
                points_per_major_unit=env.integer("MALL_CHECKOUT_POINTS_PER_UNIT", 100, minimum=1),
                max_share_percent=env.integer(
                    "MALL_CHECKOUT_MAX_SHARE_PERCENT", 50, minimum=1, maximum=100
                ),
                step_points=env.integer("MALL_CHECKOUT_STEP_POINTS", 100, minimum=1),
                min_order_minor=env.integer("MALL_CHECKOUT_MIN_ORDER_MINOR", 1000),
            ),
        )
