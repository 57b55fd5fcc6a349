"""The ledger's metrics: points flowing (issued, redeemed, reversed, expired), group-commit batch
sizes, expiry runs, and sampled gauges of liability and what awaits the sweeps."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import asyncpg
from google.protobuf.message import Message

from loyalty.ledger.v1 import ledger_pb2 as pb
from services.common.metrics import DURATION_BUCKETS, Gauge, SampledGauges, meter, sampled_row
from services.ledger import queries

# A transfer's kind, as the flow it is in the program's economy.
FLOWS = {
    pb.TRANSFER_KIND_EARN: "issued",
    pb.TRANSFER_KIND_SPEND: "redeemed",
    pb.TRANSFER_KIND_CAPTURE: "redeemed",
    pb.TRANSFER_KIND_REVERSAL: "reversed",
}

points = meter().create_counter(
    "points.ledger.points",
    unit="{point}",
    description="Points moved, by flow: issued, redeemed, reversed, expired",
)
batch_size = meter().create_histogram(
    "points.ledger.batch.size",
    unit="{operation}",
    description="Operations per ledger transaction (group commit and PostBatch)",
    explicit_bucket_boundaries_advisory=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 5000),
)
expiry_duration = meter().create_histogram(
    "points.ledger.expiry.duration",
    unit="s",
    description="Duration of an expiry run",
    explicit_bucket_boundaries_advisory=(*DURATION_BUCKETS, 30, 60, 300, 900),
)


def transfers_of(outcome: Message) -> Iterator[pb.Transfer]:
    """The transfers a mutation's response carries (a credit's, a capture's, a reversal's)."""
    for name in ("transfer", "capture", "reversal"):
        if name in outcome.DESCRIPTOR.fields_by_name and outcome.HasField(name):
            yield getattr(outcome, name)


def count_flows(outcomes: Iterable[Message]) -> None:
    """Count the transfers of committed, newly applied outcomes (never replays)."""
    totals: dict[str, int] = {}
    for outcome in outcomes:
        for transfer in transfers_of(outcome):
            flow = FLOWS.get(transfer.kind)
            if flow is not None:
                totals[flow] = totals.get(flow, 0) + transfer.amount
    for flow, amount in totals.items():
        points.add(amount, {"points.flow": flow})


def sampled(pool: asyncpg.Pool) -> SampledGauges:
    return sampled_row(
        pool,
        queries.gauges,
        [
            (Gauge("points.ledger.liability", "{point}", "Points members hold"), "liability"),
            (
                Gauge("points.ledger.holds.overdue", "{hold}", "Holds past deadline"),
                "overdue_holds",
            ),
            (
                Gauge("points.ledger.lots.due", "{lot}", "Lots awaiting the expiry sweep"),
                "due_lots",
            ),
        ],
    )
