"""Experiments through the rules service: members assigned by the documented hash, each arm
earning by its own program, a known uplift found within its interval, conclusion with a
promotion, and the events that announce it.

An experiment assigns every member with an event while it runs, so each test here concludes
its experiment before it ends (the other tests' members must earn by the program)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
import pytest

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.server import ServiceHost
from services.common.timestamps import to_timestamp
from services.rules.experiment_design import arm_for
from tests.support.cli import points
from tests.support.events import program_events
from tests.support.rules_calls import PROGRAM, RulesStub, define_program, event


@pytest.fixture(scope="module", autouse=True)
async def program(rules: RulesStub) -> None:
    await define_program(rules)


LIKES = {"a": 3.0, "b": 5.0, "h": 3.0}  # each member's likes after the first, by arm (Poisson)


def stored_rule(rule_id: str) -> pb.Rule:
    return next(r for r in PROGRAM if r.rule_id == rule_id)


def experiment(experiment_id: str, rule_id: str = "like", points: int = 2) -> pb.Experiment:
    """Control, a treatment giving `points` per event of the rule, and a holdout."""
    draft = pb.Rule()
    draft.CopyFrom(stored_rule(rule_id))
    draft.action.points = points
    draft.ClearField("version")
    found = pb.Experiment(
        experiment_id=experiment_id,
        name="Likes x2",
        arms=[
            pb.Arm(arm_id="a", role=pb.ARM_ROLE_CONTROL, share_bp=4000),
            pb.Arm(arm_id="b", role=pb.ARM_ROLE_TREATMENT, share_bp=4000, rules=[draft]),
            pb.Arm(arm_id="h", role=pb.ARM_ROLE_HOLDOUT, share_bp=2000),
        ],
        primary_metric=pb.METRIC_EVENTS,
        event_types=[draft.event_type],
        min_days=5,
        min_members=30,
    )
    now = datetime.now(UTC)
    found.start_time.CopyFrom(to_timestamp(now - timedelta(days=6, hours=1)))
    found.end_time.CopyFrom(to_timestamp(now + timedelta(days=1)))
    return found


@contextlib.asynccontextmanager
async def running(rules: RulesStub, draft: pb.Experiment) -> AsyncIterator[pb.Experiment]:
    """The experiment started, and concluded when the block ends (unless it was)."""
    await rules.UpsertExperiment(pb.UpsertExperimentRequest(experiment=draft))
    started = await rules.StartExperiment(
        pb.StartExperimentRequest(experiment_id=draft.experiment_id, request_id=uuid.uuid4().hex)
    )
    try:
        yield started.experiment
    finally:
        with contextlib.suppress(grpc.aio.AioRpcError):
            await rules.ConcludeExperiment(
                pb.ConcludeExperimentRequest(experiment_id=draft.experiment_id)
            )


async def test_a_known_uplift_is_found_within_its_interval(
    rules: RulesStub, rules_host: ServiceHost
) -> None:
    rng = np.random.default_rng(30)
    async with running(rules, experiment("like-x2")) as started:
        members = [f"exp-like-{i:03d}" for i in range(240)]
        first = await rules.RecordEvents(
            pb.RecordEventsRequest(
                events=[event(m, pb.EVENT_TYPE_LIKE, days_ago=6).event for m in members]
            )
        )
        arms = {}
        for member, result in zip(members, first.results, strict=True):
            (assigned,) = result.response.assignments
            arms[member] = assigned.arm_id
            assert assigned.arm_id == arm_for(started, member)
            awards = {a.rule_id: a for a in result.response.awards}
            if assigned.arm_id == "h":
                assert "like" not in awards  # the holdout earns nothing from what is tested
            else:
                like = awards["like"]
                assert like.points == (2 if assigned.arm_id == "b" else 1)
                assert (like.experiment_id, like.arm_id) == ("like-x2", assigned.arm_id)
        later = [
            event(m, pb.EVENT_TYPE_LIKE, days_ago=float(rng.uniform(0, 5.5))).event
            for m in members
            for _ in range(int(rng.poisson(LIKES[arms[m]])))
        ]
        for at in range(0, len(later), 500):
            await rules.RecordEvents(pb.RecordEventsRequest(events=later[at : at + 500]))
        found = await rules.GetExperiment(pb.GetExperimentRequest(experiment_id="like-x2"))
    results = {a.arm_id: a for a in found.results.arms}
    assert sum(r.members for r in results.values()) == len(members)
    uplift = next(m for m in results["b"].metrics if m.metric == pb.METRIC_EVENTS)
    true_uplift = LIKES["b"] - LIKES["a"]
    assert uplift.low < true_uplift < uplift.high and uplift.low > 0 and uplift.significant
    same = next(m for m in results["h"].metrics if m.metric == pb.METRIC_EVENTS)
    assert same.low < 0 < same.high and not same.significant
    assert results["b"].points > results["a"].points > 0 and results["h"].points == 0
    # Likes are all these members did: every point came from the rule under test.
    assert found.results.budget_used_points == sum(r.points for r in results.values())
    assert found.results.days == 6 and found.results.enough_data
    # The data team's export: every member, with the arm they earned by.
    code, out, err = await points(
        "experiments", "export", "like-x2", RULES_ADDR=f"127.0.0.1:{rules_host.port}"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and err.strip() == f"{len(members)} assignments"
    assert {r["user_id"]: r["arm_id"] for r in rows} == arms
    assert {r["role"] for r in rows} == {"CONTROL", "TREATMENT", "HOLDOUT"}


async def test_an_a_a_experiment_finds_no_difference(rules: RulesStub) -> None:
    """Two arms earning alike, members behaving alike: no metric differs (the statistics'
    false-positive rate over 200 seeded runs is in tests/unit/rules/test_experiments.py)."""
    draft = experiment("like-aa", points=1)
    del draft.arms[2]
    draft.arms[0].share_bp = draft.arms[1].share_bp = 5000
    rng = np.random.default_rng(31)
    async with running(rules, draft):
        members = [f"exp-aa-{i:03d}" for i in range(200)]
        likes = [
            event(m, pb.EVENT_TYPE_LIKE, days_ago=float(rng.uniform(0, 5.5))).event
            for m in members
            for _ in range(1 + int(rng.poisson(3.0)))
        ]
        for at in range(0, len(likes), 500):
            await rules.RecordEvents(pb.RecordEventsRequest(events=likes[at : at + 500]))
        found = await rules.GetExperiment(pb.GetExperimentRequest(experiment_id="like-aa"))
    (other,) = [a for a in found.results.arms if a.arm_id == "b"]
    assert other.members > 50 and all(m.p_value > 0 for m in other.metrics)
    assert not [m.metric for m in other.metrics if m.significant]


async def test_assignment_stays_when_shares_change_and_conclusion_promotes(
    rules: RulesStub, database_url: str
) -> None:
    experiment_id = f"share-{uuid.uuid4().hex[:8]}"
    draft = experiment(experiment_id, "share", 4)
    async with running(rules, draft):
        member = f"exp-share-{uuid.uuid4().hex[:8]}"
        once = await rules.RecordEvent(event(member, pb.EVENT_TYPE_SHARE))
        again = await rules.RecordEvent(event(member, pb.EVENT_TYPE_SHARE))
        assert once.assignments == again.assignments and len(once.assignments) == 1
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await rules.UpsertExperiment(pb.UpsertExperimentRequest(experiment=draft))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        other = experiment(f"other-{uuid.uuid4().hex[:8]}", "share", 3)
        await rules.UpsertExperiment(pb.UpsertExperimentRequest(experiment=other))
        with pytest.raises(grpc.aio.AioRpcError) as overlap:
            await rules.StartExperiment(
                pb.StartExperimentRequest(experiment_id=other.experiment_id)
            )
        assert "EXPERIMENT_OVERLAP" in str(overlap.value.details()) or overlap.value.code() == (
            grpc.StatusCode.FAILED_PRECONDITION
        )
        try:
            concluded = await rules.ConcludeExperiment(
                pb.ConcludeExperimentRequest(
                    experiment_id=experiment_id, promote_arm_id="b", actor="ops@example.com"
                )
            )
            assert concluded.experiment.status == pb.EXPERIMENT_STATUS_CONCLUDED
            assert [r.action.points for r in concluded.promoted_rules] == [4]
            after = await rules.RecordEvent(event(f"{member}-later", pb.EVENT_TYPE_SHARE))
            assert not after.assignments  # concluded: everyone earns by the program again
            share = next(a for a in after.awards if a.rule_id == "share")
            assert share.points == 4 and not share.experiment_id
        finally:
            await rules.UpsertRule(pb.UpsertRuleRequest(rule=stored_rule("share")))
    started = await program_events(database_url, "rules", "experiment.started")
    ended = await program_events(database_url, "rules", "experiment.concluded")
    assert any(e["data"]["experiment_id"] == experiment_id for e in started)
    (mine,) = [e["data"] for e in ended if e["data"]["experiment_id"] == experiment_id]
    assert mine["reason"] == "OPERATOR" and mine["promoted_arm_id"] == "b"
    assert sum(mine["members"].values()) == 1


async def test_of_two_overlapping_experiments_started_at_once_one_runs(rules: RulesStub) -> None:
    drafts = [experiment(f"race-{uuid.uuid4().hex[:8]}", "share", 3) for _ in range(2)]
    for draft in drafts:
        await rules.UpsertExperiment(pb.UpsertExperimentRequest(experiment=draft))
    starts = await asyncio.gather(
        *(
            rules.StartExperiment(pb.StartExperimentRequest(experiment_id=d.experiment_id))
            for d in drafts
        ),
        return_exceptions=True,
    )
    refused = [s for s in starts if isinstance(s, grpc.aio.AioRpcError)]
    (started,) = [s for s in starts if isinstance(s, pb.StartExperimentResponse)]
    await rules.ConcludeExperiment(
        pb.ConcludeExperimentRequest(experiment_id=started.experiment.experiment_id)
    )
    assert len(refused) == 1 and refused[0].code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already tests share" in str(refused[0].details())


async def test_an_experiment_for_new_members_leaves_the_others_alone(rules: RulesStub) -> None:
    old = f"exp-old-{uuid.uuid4().hex[:8]}"
    await rules.RecordEvent(event(old, pb.EVENT_TYPE_CHECK_IN))
    draft = experiment(f"new-{uuid.uuid4().hex[:8]}", "share", 3)
    draft.audience = pb.AUDIENCE_NEW_USERS
    draft.ClearField("start_time")  # from the start on
    async with running(rules, draft):
        before = await rules.RecordEvent(event(old, pb.EVENT_TYPE_SHARE))
        newcomer = await rules.RecordEvent(event(f"{old}-new", pb.EVENT_TYPE_SHARE))
    assert not before.assignments
    assert [a.experiment_id for a in newcomer.assignments] == [draft.experiment_id]


async def test_bad_experiments_are_refused_by_field(rules: RulesStub) -> None:
    draft = experiment("bad-one")
    draft.arms[0].share_bp = 10
    draft.arms[1].rules[0].action.points = -1
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await rules.UpsertExperiment(pb.UpsertExperimentRequest(experiment=draft))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "experiment.arms" in str(refused.value.details())
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await rules.GetExperiment(pb.GetExperimentRequest(experiment_id="no-such"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
