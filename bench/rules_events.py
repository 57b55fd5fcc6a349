"""RecordEvent end to end, including the ledger credit, at 32 concurrent clients, with caps and
a budget active. Target (issue 5): >= 1,000 events/s, p99 <= 50 ms. Services run as separate
processes. Baseline in the same run: the rules service's gRPC health check (the RPC stack)."""

from __future__ import annotations

import asyncio
import os
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.support import closed_loop, p, scratch_database, suite
from loyalty.rules.v1 import rules_pb2 as pb
from loyalty.rules.v1 import rules_pb2_grpc

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
CLIENTS = 32
NO_RISK_LIMITS = {"RULES_VELOCITY_PER_MINUTE": "1000000", "RULES_REVIEW_PER_MINUTE": "1000000"}


async def main() -> None:
    async with (
        scratch_database("bench_rules") as url,
        suite(url, ("ledger", "rules"), NO_RISK_LIMITS) as running,
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

        async def check(client: int, i: int) -> None:
            await health.Check(health_pb2.HealthCheckRequest())

        async def record(client: int, i: int) -> None:
            reply = await rules.RecordEvent(
                pb.RecordEventRequest(
                    event=pb.Event(
                        event_id=uuid.uuid4().hex,
                        user_id=f"user-{client}-{i % 50}",
                        type=pb.EVENT_TYPE_LIKE,
                    )
                )
            )
            assert reply.total_points == 1

        base_count, base_lat = await closed_loop(CLIENTS, SECONDS / 2, check)
        await closed_loop(CLIENTS, 1, record)
        cpu = running.cpu_seconds()
        count, lat = await closed_loop(CLIENTS, SECONDS, record)
        cpu_per_event = running.cpu_ms_per(cpu, count)
    base = base_count / (SECONDS / 2)
    print(
        f"health check x{CLIENTS} : {base:7.0f} rps  p99 {p(base_lat, 0.99):.1f} ms "
        "(baseline: the RPC stack alone)"
    )
    print(
        f"RecordEvent x{CLIENTS}  : {count / SECONDS:7.0f} events/s  p50 {p(lat, 0.5):.1f} ms"
        f"  p99 {p(lat, 0.99):.1f} ms  ({count / SECONDS / base:.2f} of baseline)"
    )
    print(f"CPU ms per event      : {cpu_per_event}")


if __name__ == "__main__":
    asyncio.run(main())
