"""Experiments: drafted, started, measured, reallocated (when adaptive) and concluded.

A running experiment is part of the program (program.py): each event of a member inside its
window assigns the member to an arm, once (`assign`), and the member then earns by that arm's
view of the program. Results are computed on demand from the events, the awards and the
ledger's spends; a periodic job concludes experiments past their end or their budget and moves
adaptive experiments' shares (bandit.py).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

import asyncpg
import numpy as np

from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.rules.v1 import rules_pb2 as pb
from services.common import outbox
from services.common.db import Conn, current_time
from services.common.errors import FailedPrecondition, NotFound
from services.common.ledger_client import LedgerClient
from services.common.outbox import Event
from services.common.timestamps import to_timestamp
from services.common.validation import Checker
from services.rules import bandit, definitions, experiment_design, experiment_stats
from services.rules.config import RulesConfig
from services.rules.event_state import EventState
from services.rules.experiment_design import runs_at
from services.rules.experiment_stats import Outcome
from services.rules.program import Program
from services.rules.repository import experiments as repo
from services.rules.repository import program as program_repo

log = logging.getLogger(__name__)
SPENDERS_PER_CALL = 5000  # the ledger's FindSpenders limit


async def assign(
    conn: Conn, program: Program, state: EventState, occurred_at: datetime
) -> dict[str, str]:
    """The member's arm of each experiment running at `occurred_at` that takes them in:
    assigned now by the experiment's shares, or as assigned before. One statement, and none
    while no experiment runs."""
    running = [e for e in program.experiments if runs_at(e, occurred_at)]
    wanted = []
    for experiment in running:
        if experiment.audience == pb.AUDIENCE_NEW_USERS:
            start, _ = experiment_design.window(experiment)
            if await state.since(conn, state.user_id) < start:
                continue
        arm = experiment_design.arm_for(experiment, state.user_id)
        wanted.append((experiment.experiment_id, arm))
    if not wanted:
        return {}
    return await repo.assign(conn, state.user_id, occurred_at, wanted)


def _not_found(experiment_id: str) -> NotFound:
    return NotFound("EXPERIMENT_NOT_FOUND", f"no experiment {experiment_id!r}")


def _check_id(experiment_id: str) -> None:
    c = Checker()
    c.require(definitions.valid_name(experiment_id), "experiment_id", definitions.NAME_RULE)
    c.done()


class Experiments:
    def __init__(self, pool: asyncpg.Pool, config: RulesConfig, ledger: LedgerClient) -> None:
        self.pool = pool
        self.config = config
        self.ledger = ledger

    async def _locked(self, conn: Conn, experiment_id: str) -> pb.Experiment:
        experiment = await repo.find(conn, experiment_id, lock=True)
        if experiment is None:
            raise _not_found(experiment_id)
        return experiment

    async def save(self, experiment: pb.Experiment) -> pb.Experiment:
        """Create or replace a draft."""
        experiment_design.check_experiment(experiment)
        stored = experiment_design.with_defaults(experiment)
        stored.status = pb.EXPERIMENT_STATUS_DRAFT
        for output in ("started_time", "concluded_time", "promoted_arm_id", "reallocated_time"):
            stored.ClearField(output)
        async with self.pool.acquire() as conn, conn.transaction():
            before = await repo.find(conn, experiment.experiment_id, lock=True)
            if before is not None and before.status != pb.EXPERIMENT_STATUS_DRAFT:
                raise FailedPrecondition(
                    "EXPERIMENT_NOT_DRAFT", "a started experiment cannot change"
                )
            await repo.save(conn, stored)
        return stored

    async def start(self, experiment_id: str) -> pb.Experiment:
        """Start a draft: members are assigned from its start (now unless set) on."""
        _check_id(experiment_id)
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.lock_starts(conn)
            experiment = await self._locked(conn, experiment_id)
            if experiment.status != pb.EXPERIMENT_STATUS_DRAFT:
                raise FailedPrecondition("EXPERIMENT_NOT_DRAFT", "the experiment has started")
            now = await current_time(conn)
            c = Checker("experiment")
            c.require(
                experiment.end_time.ToDatetime(tzinfo=now.tzinfo) > now, "end_time", "has passed"
            )
            c.done()
            await self._refuse_overlap(conn, experiment)
            experiment.status = pb.EXPERIMENT_STATUS_RUNNING
            experiment.started_time.CopyFrom(to_timestamp(now))
            if not experiment.HasField("start_time"):
                experiment.start_time.CopyFrom(to_timestamp(now))
            await repo.save(conn, experiment)
            await outbox.emit(conn, [_started(experiment)])
        return experiment

    @staticmethod
    async def _refuse_overlap(conn: Conn, experiment: pb.Experiment) -> None:
        rules, campaigns = experiment_design.tested(experiment)
        for other in await repo.every(conn, "RUNNING"):
            other_rules, other_campaigns = experiment_design.tested(other)
            shared = sorted((rules & other_rules) | (campaigns & other_campaigns))
            if shared:
                raise FailedPrecondition(
                    "EXPERIMENT_OVERLAP",
                    f"experiment {other.experiment_id!r} already tests {', '.join(shared)}",
                )

    async def conclude(
        self, experiment_id: str, promote_arm_id: str, actor: str, reason: str = "OPERATOR"
    ) -> pb.ConcludeExperimentResponse:
        """Stop assigning; with `promote_arm_id`, save that arm's drafts as new versions."""
        _check_id(experiment_id)
        async with self.pool.acquire() as conn, conn.transaction():
            experiment = await self._locked(conn, experiment_id)
            if experiment.status != pb.EXPERIMENT_STATUS_RUNNING:
                raise FailedPrecondition("EXPERIMENT_NOT_RUNNING", "the experiment is not running")
            answer = pb.ConcludeExperimentResponse()
            if promote_arm_id:
                await _promote(conn, experiment, promote_arm_id, actor, answer)
            experiment.status = pb.EXPERIMENT_STATUS_CONCLUDED
            experiment.concluded_time.CopyFrom(to_timestamp(await current_time(conn)))
            experiment.promoted_arm_id = promote_arm_id
            await repo.save(conn, experiment)
            members = await repo.members_by_arm(conn, experiment_id)
            await outbox.emit(conn, [_concluded(experiment, reason, members)])
        answer.experiment.CopyFrom(experiment)
        return answer

    async def get(self, experiment_id: str) -> pb.GetExperimentResponse:
        _check_id(experiment_id)
        async with self.pool.acquire() as conn:
            experiment = await repo.find(conn, experiment_id)
            if experiment is None:
                raise _not_found(experiment_id)
            now = await current_time(conn)
        answer = pb.GetExperimentResponse(experiment=experiment)
        if experiment.status != pb.EXPERIMENT_STATUS_DRAFT:
            until = _until(experiment, now)
            outcomes = await self.outcomes(experiment, until)
            answer.results.CopyFrom(
                experiment_stats.results(experiment, outcomes, until, self.config.cost)
            )
        return answer

    async def every(self) -> list[pb.Experiment]:
        async with self.pool.acquire() as conn:
            return await repo.every(conn)

    async def assignments(
        self, experiment_id: str, after_user: str, fetch: int
    ) -> list[asyncpg.Record]:
        _check_id(experiment_id)
        async with self.pool.acquire() as conn:
            if await repo.find(conn, experiment_id) is None:
                raise _not_found(experiment_id)
            return await repo.assignments(conn, experiment_id, after_user, fetch)

    async def outcomes(
        self, experiment: pb.Experiment, until: datetime, spenders: bool = True
    ) -> list[Outcome]:
        """What each assigned member did from assignment until `until`; who spent points is
        asked of the ledger only with `spenders`."""
        types = [pb.EventType.Name(t) for t in experiment.event_types]
        async with self.pool.acquire() as conn:
            rows = await repo.member_outcomes(
                conn, experiment.experiment_id, types, until, self.config.zone.key
            )
        spent = await self._spenders(rows, until) if spenders else set()
        return [
            Outcome(
                r["user_id"],
                r["arm_id"],
                r["assigned_at"],
                r["events"],
                r["active_days"],
                r["last_at"],
                r["points"],
                r["user_id"] in spent,
                r["tested_points"],
            )
            for r in rows
        ]

    async def _spenders(self, rows: list[asyncpg.Record], until: datetime) -> set[str]:
        found: set[str] = set()
        for at in range(0, len(rows), SPENDERS_PER_CALL):
            chunk = rows[at : at + SPENDERS_PER_CALL]
            request = lpb.FindSpendersRequest(
                user_ids=[r["user_id"] for r in chunk],
                since_times=[to_timestamp(r["assigned_at"]) for r in chunk],
                end_time=to_timestamp(until),
            )
            found |= await self.ledger.find_spenders(request)
        return found

    # --- the periodic job ------------------------------------------------------------------

    async def tick(self) -> None:
        """Conclude running experiments past their end or their budget; reallocate adaptive
        ones."""
        async with self.pool.acquire() as conn:
            running = await repo.every(conn, "RUNNING")
            now = await current_time(conn)
        for experiment in running:
            try:
                await self._tend(experiment, now)
            except FailedPrecondition:
                continue  # concluded meanwhile, by an operator
            except Exception:
                log.exception("experiment %s: not tended", experiment.experiment_id)

    async def _tend(self, experiment: pb.Experiment, now: datetime) -> None:
        _, end = experiment_design.window(experiment)
        if now >= end:
            await self.conclude(experiment.experiment_id, "", "", reason="ENDED")
            return
        if not (experiment.adaptive or experiment.budget_points):
            return
        # The ledger is asked who spent only when the bandit decides by it.
        by_redemption = experiment.adaptive and experiment.primary_metric == pb.METRIC_REDEMPTION
        outcomes = await self.outcomes(experiment, now, spenders=by_redemption)
        spent = sum(o.tested_points for o in outcomes)
        if experiment.budget_points and spent >= experiment.budget_points:
            await self.conclude(experiment.experiment_id, "", "", reason="BUDGET")
        elif experiment.adaptive and outcomes:
            shares = _reallocation(experiment, outcomes, now, spent)
            await self._reallocate(experiment.experiment_id, shares, now)

    async def _reallocate(self, experiment_id: str, shares: dict[str, int], now: datetime) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            experiment = await self._locked(conn, experiment_id)
            if experiment.status != pb.EXPERIMENT_STATUS_RUNNING:
                return
            for arm in experiment.arms:
                arm.share_bp = shares[arm.arm_id]
            experiment.reallocated_time.CopyFrom(to_timestamp(now))
            await repo.save(conn, experiment)


def _until(experiment: pb.Experiment, now: datetime) -> datetime:
    """The end of what results count: now, the experiment's end, or its conclusion."""
    _, end = experiment_design.window(experiment)
    moments = [now, end]
    if experiment.HasField("concluded_time"):
        moments.append(experiment.concluded_time.ToDatetime(tzinfo=now.tzinfo))
    return min(moments)


def _reallocation(
    experiment: pb.Experiment, outcomes: list[Outcome], now: datetime, spent: int
) -> dict[str, int]:
    """New shares by Thompson sampling (bandit.py), from the primary metric so far."""
    figures = []
    for arm in experiment.arms:
        members = [o for o in outcomes if o.arm_id == arm.arm_id]
        values = experiment_stats.values_of(members, experiment.primary_metric, now)
        figures.append(
            bandit.ArmFigures(
                arm.arm_id,
                arm.role,
                len(values),
                float(np.mean(values)) if values else 0.0,
                float(np.var(values, ddof=1)) if len(values) > 1 else 0.0,
                sum(o.tested_points for o in members) / len(members) if members else 0.0,
            )
        )
    start, end = experiment_design.window(experiment)
    elapsed = max((now - start) / timedelta(days=1), 1 / 24)
    to_come = len(outcomes) / elapsed * max((end - now) / timedelta(days=1), 0)
    seed = hashlib.sha256(f"{experiment.experiment_id}:{now.isoformat()}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(seed[:8], "big"))
    left = experiment.budget_points - spent if experiment.budget_points else None
    return bandit.shares(figures, experiment.holdout_floor_bp, rng, left, to_come)


async def _promote(
    conn: Conn,
    experiment: pb.Experiment,
    arm_id: str,
    actor: str,
    answer: pb.ConcludeExperimentResponse,
) -> None:
    """The arm's drafts as new versions of their rules and campaigns."""
    arm = next((a for a in experiment.arms if a.arm_id == arm_id), None)
    c = Checker()
    c.require(
        arm is not None and arm.role == pb.ARM_ROLE_TREATMENT,
        "promote_arm_id",
        "must name a TREATMENT arm of the experiment",
    )
    c.done()
    assert arm is not None
    for rule in arm.rules:
        await program_repo.lock_rule(conn, rule.rule_id)
        answer.promoted_rules.append(await program_repo.save_rule(conn, rule, actor))
    for campaign in arm.campaigns:
        stored = await program_repo.new_version(
            conn, "campaign", campaign.campaign_id, campaign, actor
        )
        await program_repo.save_campaign(conn, stored)
        answer.promoted_campaigns.append(stored)


def _started(experiment: pb.Experiment) -> Event:
    return Event(
        "experiment.started",
        None,
        {
            "experiment_id": experiment.experiment_id,
            "arms": [
                {
                    "arm_id": a.arm_id,
                    "role": pb.ArmRole.Name(a.role).removeprefix("ARM_ROLE_"),
                    "share_bp": a.share_bp,
                }
                for a in experiment.arms
            ],
            "start_time": experiment.start_time.ToJsonString(),
            "end_time": experiment.end_time.ToJsonString(),
            "adaptive": experiment.adaptive,
        },
    )


def _concluded(experiment: pb.Experiment, reason: str, members: dict[str, int]) -> Event:
    data = {
        "experiment_id": experiment.experiment_id,
        "reason": reason,
        "promoted_arm_id": experiment.promoted_arm_id or None,
        "members": {a.arm_id: members.get(a.arm_id, 0) for a in experiment.arms},
    }
    return Event("experiment.concluded", None, data)
