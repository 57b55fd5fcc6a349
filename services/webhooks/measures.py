"""The webhooks service's metrics: attempts by outcome and their duration, and sampled gauges
of what waits (deliveries pending, the oldest one's age) and of disabled subscriptions."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from services.common.metrics import DURATION_BUCKETS, Gauge, Readings, SampledGauges, meter
from services.webhooks import repository as repo

attempts = meter().create_counter(
    "points.webhooks.attempts",
    unit="{attempt}",
    description="Delivery attempts, by outcome: delivered, retry, gave_up",
)
attempt_duration = meter().create_histogram(
    "points.webhooks.attempt.duration",
    unit="s",
    description="Duration of a delivery attempt, request to answer",
    explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
)

GAUGES = (
    Gauge("points.webhooks.pending", "{delivery}", "Deliveries waiting to be sent or retried"),
    Gauge("points.webhooks.pending.age", "s", "Age of the oldest delivery waiting"),
    Gauge("points.webhooks.subscriptions.disabled", "{subscription}", "Disabled subscriptions"),
)


def sampled(pool: asyncpg.Pool) -> SampledGauges:
    async def sample() -> Mapping[str, Readings]:
        async with pool.acquire() as conn:
            row = await repo.gauges(conn)
        return {
            "points.webhooks.pending": [(row["pending"], {})],
            "points.webhooks.pending.age": [(row["oldest"], {})],
            "points.webhooks.subscriptions.disabled": [(row["disabled"], {})],
        }

    return SampledGauges(GAUGES, sample)
