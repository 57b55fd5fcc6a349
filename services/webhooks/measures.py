"""The webhooks service's metrics: attempts by outcome and their duration, and sampled gauges
of what waits (deliveries pending, the oldest one's age) and of disabled subscriptions."""

from __future__ import annotations

import asyncpg

from services.common.metrics import DURATION_BUCKETS, Gauge, SampledGauges, meter, sampled_row
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


def sampled(pool: asyncpg.Pool) -> SampledGauges:
    return sampled_row(
        pool,
        repo.gauges,
        [
            (Gauge("points.webhooks.pending", "{delivery}", "Deliveries waiting"), "pending"),
            (Gauge("points.webhooks.pending.age", "s", "Oldest delivery waiting"), "oldest"),
            (
                Gauge("points.webhooks.subscriptions.disabled", "{subscription}", "Disabled"),
                "disabled",
            ),
        ],
    )
