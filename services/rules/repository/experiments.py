"""Experiments as stored, their members' arms, and what those members did since assignment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from asyncpg import Record

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.db import Conn, lock_for_transaction

STATUS = {
    pb.EXPERIMENT_STATUS_DRAFT: "DRAFT",
    pb.EXPERIMENT_STATUS_RUNNING: "RUNNING",
    pb.EXPERIMENT_STATUS_CONCLUDED: "CONCLUDED",
}


async def find(conn: Conn, experiment_id: str, *, lock: bool = False) -> pb.Experiment | None:
    """The experiment; with `lock`, held until the transaction ends (changes serialise)."""
    definition = await conn.fetchval(
        "SELECT definition FROM experiments WHERE experiment_id = $1"
        + (" FOR UPDATE" if lock else ""),
        experiment_id,
    )
    return None if definition is None else pb.Experiment.FromString(definition)


async def lock_starts(conn: Conn) -> None:
    """Serialise starting experiments, for this transaction: the check that no running one
    tests the same rule sees every start before it."""
    await lock_for_transaction(conn, "points.rules.experiment-starts")


async def save(conn: Conn, experiment: pb.Experiment) -> None:
    await conn.execute(
        """
        INSERT INTO experiments (experiment_id, definition, status) VALUES ($1, $2, $3)
        ON CONFLICT (experiment_id) DO UPDATE
        SET definition = EXCLUDED.definition, status = EXCLUDED.status, updated_at = now()
        """,
        experiment.experiment_id,
        experiment.SerializeToString(),
        STATUS[experiment.status],
    )


async def every(conn: Conn, status: str | None = None) -> list[pb.Experiment]:
    """Every experiment (or those of one status), newest first."""
    rows = await conn.fetch(
        """
        SELECT definition FROM experiments WHERE $1::text IS NULL OR status = $1
        ORDER BY created_at DESC, experiment_id
        """,
        status,
    )
    return [pb.Experiment.FromString(r["definition"]) for r in rows]


async def assign(
    conn: Conn, user_id: str, at: datetime, wanted: Sequence[tuple[str, str]]
) -> dict[str, str]:
    """The member's arm of each (experiment_id, arm_id) in `wanted`: the arm stored before, or
    the one wanted, stored now with `at` (under the member's lock: one statement)."""
    rows = await conn.fetch(
        """
        WITH wanted AS (
            SELECT * FROM unnest($2::text[], $3::text[]) AS w(experiment_id, arm_id)
        ), added AS (
            INSERT INTO experiment_assignments (experiment_id, user_id, arm_id, assigned_at)
            SELECT experiment_id, $1, arm_id, $4 FROM wanted
            ON CONFLICT (experiment_id, user_id) DO NOTHING
            RETURNING experiment_id, arm_id
        )
        SELECT experiment_id, arm_id FROM added
        UNION ALL
        SELECT experiment_id, arm_id FROM experiment_assignments
        WHERE user_id = $1 AND experiment_id = ANY($2::text[])
        """,
        user_id,
        [w[0] for w in wanted],
        [w[1] for w in wanted],
        at,
    )
    return {r["experiment_id"]: r["arm_id"] for r in rows}


async def assignments(conn: Conn, experiment_id: str, after_user: str, fetch: int) -> list[Record]:
    """Up to `fetch` assignments of the experiment after member `after_user`, by member id."""
    return list(
        await conn.fetch(
            """
            SELECT user_id, arm_id, assigned_at FROM experiment_assignments
            WHERE experiment_id = $1 AND user_id > $2
            ORDER BY user_id LIMIT $3
            """,
            experiment_id,
            after_user,
            fetch,
        )
    )


async def member_outcomes(
    conn: Conn, experiment_id: str, event_types: Sequence[str], until: datetime, zone: str
) -> list[Record]:
    """Per assigned member, from assignment until `until`: events of `event_types` (all when
    empty), days active (in the program's time zone), the last event, and points awarded
    (neither rejected in review nor taken back by a refund), in all and by what the experiment
    tests. Denied events do not count."""
    return list(
        await conn.fetch(
            """
            SELECT a.user_id, a.arm_id, a.assigned_at, coalesce(e.counted, 0) AS events,
                   coalesce(e.days, 0) AS active_days, e.last_at,
                   coalesce(w.points, 0)::bigint AS points,
                   coalesce(w.tested, 0)::bigint AS tested_points
            FROM experiment_assignments a
            LEFT JOIN LATERAL (
                SELECT count(*) FILTER (WHERE cardinality($2::text[]) = 0
                                          OR ev.event_type = ANY($2::text[])) AS counted,
                       count(DISTINCT (ev.occurred_at AT TIME ZONE $4)::date) AS days,
                       max(ev.occurred_at) AS last_at
                FROM events ev
                WHERE ev.user_id = a.user_id AND ev.decision <> 'DENY'
                  AND ev.occurred_at >= a.assigned_at AND ev.occurred_at < $3
            ) e ON true
            LEFT JOIN LATERAL (
                SELECT sum(aw.points) AS points,
                       sum(aw.points) FILTER (WHERE aw.experiment_id = $1) AS tested
                FROM awards aw
                WHERE aw.user_id = a.user_id AND aw.review <> 'REJECTED'
                  AND aw.reversed_by IS NULL
                  AND coalesce(aw.occurred_at, aw.created_at) >= a.assigned_at
                  AND coalesce(aw.occurred_at, aw.created_at) < $3
            ) w ON true
            WHERE a.experiment_id = $1
            ORDER BY a.user_id
            """,
            experiment_id,
            list(event_types),
            until,
            zone,
        )
    )


async def members_by_arm(conn: Conn, experiment_id: str) -> dict[str, int]:
    rows = await conn.fetch(
        """
        SELECT arm_id, count(*) AS members FROM experiment_assignments
        WHERE experiment_id = $1 GROUP BY arm_id
        """,
        experiment_id,
    )
    return {r["arm_id"]: r["members"] for r in rows}
