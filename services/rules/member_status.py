"""What a member sees of rules: check-in streak, tier with progress, caps left today.

One home for GetCheckInStatus, GetUserTier, GetUserCaps and GetMemberStatus (the wallet's
single call). A read takes two statements (the clock, then every part at once) and no lock.
The tier is re-evaluated under the member's lock only when the stored tier no longer matches
the last 12 months' points: a downgrade as awards age out, or a tier not yet recorded.
"""

from __future__ import annotations

import asyncpg

from loyalty.rules.v1 import rules_pb2 as pb
from services.common.timestamps import to_timestamp
from services.rules import definitions
from services.rules.evaluator import Evaluator
from services.rules.event_state import daily_counter
from services.rules.program import ProgramCache
from services.rules.repository import members as members_repo


async def member_status(
    pool: asyncpg.Pool, programs: ProgramCache, evaluator: Evaluator, user_id: str
) -> pb.GetMemberStatusResponse:
    async with pool.acquire() as conn:
        now, generation = await members_repo.clock(conn)
        program = await programs.at(conn, generation)
        today = evaluator.day_of(now)
        check_in_rules = program.rules_for(pb.EVENT_TYPE_CHECK_IN)
        streak_rule = check_in_rules[0] if check_in_rules else None
        capped = sorted(
            (r for rules in program.rules.values() for r in rules if r.daily_cap),
            key=lambda r: r.rule_id,
        )
        keys = [daily_counter(r.rule_id, today) for r in capped]
        streak_id = streak_rule.rule_id if streak_rule else ""
        state = await members_repo.member_state(conn, user_id, streak_id, keys)
        tier, next_tier = definitions.tier_for(program.tiers, state["points_12m"])
        if program.tiers and (tier.tier_id if tier else "") != state["tier_id"]:
            async with conn.transaction():
                await members_repo.lock_user(conn, user_id)
                await evaluator.evaluate_tier(conn, program.tiers, user_id)
            state = await members_repo.member_state(conn, user_id, streak_id, keys)
            tier, next_tier = definitions.tier_for(program.tiers, state["points_12m"])

    check_in = pb.GetCheckInStatusResponse(today=today.isoformat())
    if streak_rule is not None:
        last_day, length = state["last_day"], state["length"]
        check_in.checked_in_today = last_day == today
        next_day = definitions.streak_day(last_day, length, today)
        if check_in.checked_in_today:
            check_in.streak = length
            next_day = length + 1
        else:
            check_in.streak = next_day - 1
        check_in.next_points = definitions.check_in_points(streak_rule.check_in, next_day)

    standing = pb.GetUserTierResponse()
    if program.tiers:
        standing.points_12m = state["points_12m"]
        if tier is not None:
            standing.tier.CopyFrom(tier)
        if next_tier is not None:
            standing.next_tier.CopyFrom(next_tier)
            standing.points_to_next = next_tier.min_points_12m - state["points_12m"]
        standing.changes.extend(
            pb.TierChange(from_tier_id=before, to_tier_id=after, change_time=to_timestamp(at))
            for before, after, at in state["changes"]
        )

    used = dict(state["counted"])
    caps = []
    for rule in capped:
        earned = used.get("/".join(daily_counter(rule.rule_id, today)), 0)
        caps.append(
            pb.RuleCap(
                rule_id=rule.rule_id,
                event_type=rule.event_type,
                earned_today=earned,
                daily_cap=rule.daily_cap,
                remaining_today=max(rule.daily_cap - earned, 0),
            )
        )
    return pb.GetMemberStatusResponse(check_in=check_in, tier=standing, caps=caps)
