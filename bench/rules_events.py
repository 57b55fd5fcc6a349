"""RecordEvent end to end, the ledger credit included, at 32 concurrent clients with caps and
a budget active (`rules_event`). Services run as separate processes.

Goal (issue 13): >= 0.25 of the rules service's health RPC x32 on the same process. Both
tracing profiles; CPU and round trips per event. With BENCH_EXPERIMENT=1, an experiment on the
rule runs meanwhile (two arms, the same points), to measure what assignment adds.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.support import (
    SpanSink,
    each_profile,
    floor_and_path,
    report,
    round_trips,
    scratch_database,
    suite,
)
from loyalty.rules.v1 import rules_pb2 as pb
from loyalty.rules.v1 import rules_pb2_grpc

CLIENTS = 32
NO_RISK_LIMITS = {"RULES_VELOCITY_PER_MINUTE": "1000000", "RULES_REVIEW_PER_MINUTE": "1000000"}


async def measure(sink: SpanSink, profile: str) -> None:
    async with (
        scratch_database("bench_rules") as url,
        suite(url, ("ledger", "rules"), {**NO_RISK_LIMITS, **sink.env(profile)}) as running,
        grpc.aio.insecure_channel(running.address("rules")) as channel,
    ):
        rules = rules_pb2_grpc.RulesServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        await rules.UpsertRule(
            pb.UpsertRuleRequest(
                rule=pb.Rule(
                    rule_id="like",
                    kind=pb.RULE_KIND_ACTION,
                    event_type=pb.EVENT_TYPE_LIKE,
                    enabled=True,
                    action=pb.ActionParams(points=1),
                    daily_cap=1_000_000,
                )
            )
        )
        await rules.UpsertBudget(
            pb.UpsertBudgetRequest(
                budget=pb.Budget(
                    budget_id="daily",
                    applies_to_all=True,
                    period=pb.BUDGET_PERIOD_DAY,
                    points_limit=10**12,
                )
            )
        )

        if os.environ.get("BENCH_EXPERIMENT") == "1":
            await an_experiment(rules)

        async def check(client: int, i: int) -> None:
            await health.Check(health_pb2.HealthCheckRequest())

        async def record(client: int, i: int) -> None:
            event = pb.Event(
                event_id=uuid.uuid4().hex,
                user_id=f"user-{client}-{i % 50}",
                type=pb.EVENT_TYPE_LIKE,
            )
            reply = await rules.RecordEvent(pb.RecordEventRequest(event=event))
            assert reply.total_points == 1

        measured = await floor_and_path(
            running,
            CLIENTS,
            (f"rules health x{CLIENTS}", check),
            (f"RecordEvent x{CLIENTS}, credited", record),
        )
        measured.round_trips = await round_trips(sink, profile, record, CLIENTS)
    report("rules_event", profile, measured)


async def an_experiment(rules: rules_pb2_grpc.RulesServiceAsyncStub) -> None:
    """Half the members in a treatment whose like is worth what the program's is."""
    same = pb.Rule(
        rule_id="like",
        kind=pb.RULE_KIND_ACTION,
        event_type=pb.EVENT_TYPE_LIKE,
        enabled=True,
        action=pb.ActionParams(points=1),
        daily_cap=1_000_000,
    )
    experiment = pb.Experiment(
        experiment_id="bench",
        arms=[
            pb.Arm(arm_id="a", role=pb.ARM_ROLE_CONTROL, share_bp=5000),
            pb.Arm(arm_id="b", role=pb.ARM_ROLE_TREATMENT, share_bp=5000, rules=[same]),
        ],
    )
    experiment.end_time.FromDatetime(datetime.now(UTC) + timedelta(days=1))
    await rules.UpsertExperiment(pb.UpsertExperimentRequest(experiment=experiment))
    await rules.StartExperiment(pb.StartExperimentRequest(experiment_id="bench"))


if __name__ == "__main__":
    asyncio.run(each_profile(measure))
