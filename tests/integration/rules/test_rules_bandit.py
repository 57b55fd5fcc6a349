"""An adaptive experiment through the rules service's own periodic job (a private suite whose
job runs every half second): shares move to the arm with the better metric per point, the
holdout keeps its floor, a tight budget holds the costlier arm back, and a spent budget
concludes the experiment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from loyalty.rules.v1 import rules_pb2 as pb
from loyalty.rules.v1 import rules_pb2_grpc
from services.common.timestamps import to_timestamp
from services.ledger.server import SPEC as LEDGER
from services.rules.server import SPEC as RULES
from tests.support.hosts import running
from tests.support.rules_calls import RulesStub, event

FLOOR = 1000


@dataclass
class Suite:
    rules: RulesStub


@pytest.fixture
async def suite(private_database: str) -> AsyncIterator[Suite]:
    async with running(LEDGER, private_database) as ledger:
        env = {
            "LEDGER_ADDR": f"127.0.0.1:{ledger.port}",
            "RULES_EXPERIMENT_SECONDS": "0.5",
            "RULES_ACCOUNTS_PER_IP": "100000",
        }
        async with (
            running(RULES, private_database, env) as host,
            grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel,
        ):
            rules = rules_pb2_grpc.RulesServiceStub(channel)
            like = pb.Rule(
                rule_id="like",
                kind=pb.RULE_KIND_ACTION,
                event_type=pb.EVENT_TYPE_LIKE,
                enabled=True,
                action=pb.ActionParams(points=1),
            )
            await rules.UpsertRule(pb.UpsertRuleRequest(rule=like))
            yield Suite(rules)


def adaptive(experiment_id: str, budget: int = 0) -> pb.Experiment:
    """Control (a like is 1 point), a treatment (2 points), a holdout with its floor; decided
    by active days."""
    double = pb.Rule(
        rule_id="like",
        kind=pb.RULE_KIND_ACTION,
        event_type=pb.EVENT_TYPE_LIKE,
        enabled=True,
        action=pb.ActionParams(points=2),
    )
    experiment = pb.Experiment(
        experiment_id=experiment_id,
        arms=[
            pb.Arm(arm_id="a", role=pb.ARM_ROLE_CONTROL, share_bp=4500),
            pb.Arm(arm_id="b", role=pb.ARM_ROLE_TREATMENT, share_bp=4500, rules=[double]),
            pb.Arm(arm_id="h", role=pb.ARM_ROLE_HOLDOUT, share_bp=1000),
        ],
        primary_metric=pb.METRIC_ACTIVE_DAYS,
        adaptive=True,
        holdout_floor_bp=FLOOR,
        budget_points=budget,
    )
    now = datetime.now(UTC)
    experiment.start_time.CopyFrom(to_timestamp(now - timedelta(days=6)))
    experiment.end_time.CopyFrom(to_timestamp(now + timedelta(days=30)))
    return experiment


async def behave(rules: RulesStub, members: list[str]) -> None:
    """Four likes each: on one day in the control, on four days in the treatment (twice the
    points per like, but four times the active days: the better buy). Each member's arm is
    the one the first like assigned (the job may move the shares meanwhile)."""
    first = await rules.RecordEvents(
        pb.RecordEventsRequest(
            events=[event(m, pb.EVENT_TYPE_LIKE, days_ago=5).event for m in members]
        )
    )
    arms = {
        m: r.response.assignments[0].arm_id for m, r in zip(members, first.results, strict=True)
    }
    later = [
        event(m, pb.EVENT_TYPE_LIKE, days_ago=5 - (n if arms[m] == "b" else 0.01 * n)).event
        for m in members
        for n in (1, 2, 3)
    ]
    replies = await rules.RecordEvents(pb.RecordEventsRequest(events=later))
    assert all(r.HasField("response") for r in replies.results)


async def reallocated(rules: RulesStub, experiment_id: str, after: datetime) -> pb.Experiment:
    """The experiment once the job has moved its shares after `after` (or concluded it),
    within 30 s."""
    deadline = time.monotonic() + 30
    while True:
        found = (
            await rules.GetExperiment(pb.GetExperimentRequest(experiment_id=experiment_id))
        ).experiment
        if found.status == pb.EXPERIMENT_STATUS_CONCLUDED:
            return found
        if (
            found.HasField("reallocated_time")
            and found.reallocated_time.ToDatetime(tzinfo=UTC) > after
        ):
            return found
        assert time.monotonic() < deadline, "the job never reallocated"
        await asyncio.sleep(0.2)


async def run(rules: RulesStub, experiment: pb.Experiment) -> dict[str, int]:
    await rules.UpsertExperiment(pb.UpsertExperimentRequest(experiment=experiment))
    await rules.StartExperiment(pb.StartExperimentRequest(experiment_id=experiment.experiment_id))
    await behave(rules, [f"{experiment.experiment_id}-{n}" for n in range(60)])
    moved = await reallocated(rules, experiment.experiment_id, datetime.now(UTC))
    assert moved.status == pb.EXPERIMENT_STATUS_RUNNING
    await rules.ConcludeExperiment(
        pb.ConcludeExperimentRequest(experiment_id=experiment.experiment_id)
    )
    return {a.arm_id: a.share_bp for a in moved.arms}


async def test_the_bandit_moves_members_to_the_better_arm_within_the_budget(suite: Suite) -> None:
    free = await run(suite.rules, adaptive("free"))
    assert sum(free.values()) == 10_000 and free["h"] == FLOOR
    assert free["b"] > 8000 > free["a"]
    # A budget that members to come, 10 a day for 30 more days at b's cost, would overrun:
    # about 300 x 7 points at the shares above; 60 members spend about 330 first.
    tight = await run(suite.rules, adaptive("tight", budget=2000))
    assert sum(tight.values()) == 10_000 and tight["h"] == FLOOR
    assert tight["b"] < free["b"] - 2000 and tight["a"] > free["a"] + 2000
    spent = await points_of(suite.rules, "tight")
    assert spent < 2000


async def test_a_spent_budget_concludes_the_experiment(suite: Suite) -> None:
    experiment = adaptive("spent", budget=10)
    await suite.rules.UpsertExperiment(pb.UpsertExperimentRequest(experiment=experiment))
    await suite.rules.StartExperiment(pb.StartExperimentRequest(experiment_id="spent"))
    await behave(suite.rules, [f"s-{n}" for n in range(10)])
    ended = await reallocated(suite.rules, "spent", datetime.now(UTC))
    assert ended.status == pb.EXPERIMENT_STATUS_CONCLUDED
    after = await suite.rules.RecordEvent(event("s-0", pb.EVENT_TYPE_LIKE))
    assert not after.assignments and [a.points for a in after.awards] == [1]


async def points_of(rules: RulesStub, experiment_id: str) -> int:
    found = await rules.GetExperiment(pb.GetExperimentRequest(experiment_id=experiment_id))
    return sum(a.points for a in found.results.arms)
