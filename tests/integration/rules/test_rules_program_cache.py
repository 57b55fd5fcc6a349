"""Each rules process keeps the program's configuration in memory; a change made anywhere
applies to the very next event everywhere."""

from __future__ import annotations

import asyncpg
import grpc

from loyalty.rules.v1 import rules_pb2 as pb
from loyalty.rules.v1 import rules_pb2_grpc
from services.common.server import ServiceHost
from services.rules.server import SPEC as RULES
from tests.support.hosts import running
from tests.support.rules_calls import RulesStub, event


async def test_a_change_through_one_process_applies_to_the_next_event_in_another(
    database_url: str, ledger_host: ServiceHost, rules: RulesStub, user: str
) -> None:
    env = {"LEDGER_ADDR": f"127.0.0.1:{ledger_host.port}"}
    async with (
        running(RULES, database_url, env) as other,
        grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel,
    ):
        second = rules_pb2_grpc.RulesServiceStub(channel)
        rule = pb.Rule(
            rule_id="comment-probe",
            kind=pb.RULE_KIND_ACTION,
            event_type=pb.EVENT_TYPE_COMMENT,
            enabled=True,
            action=pb.ActionParams(points=2),
            daily_cap=100,
        )
        try:
            await rules.UpsertRule(pb.UpsertRuleRequest(rule=rule))
            awarded = await second.RecordEvent(event(user, pb.EVENT_TYPE_COMMENT))
            assert probe_points(awarded) == [2]
            rule.action.points = 7
            await rules.UpsertRule(pb.UpsertRuleRequest(rule=rule))
            awarded = await second.RecordEvent(event(user, pb.EVENT_TYPE_COMMENT))
            assert probe_points(awarded) == [7]
        finally:
            rule.enabled = False
            await rules.UpsertRule(pb.UpsertRuleRequest(rule=rule))
        awarded = await second.RecordEvent(event(user, pb.EVENT_TYPE_COMMENT))
        assert probe_points(awarded) == []


def probe_points(reply: pb.RecordEventResponse) -> list[int]:
    """Points from this test's rule (other modules may have rules for comments too)."""
    return [a.points for a in reply.awards if a.rule_id == "comment-probe"]


async def test_every_configuration_table_bumps_the_generation(
    database_url: str, rules: RulesStub
) -> None:
    changes = [
        "INSERT INTO rules.cap_groups (name, daily_cap) VALUES ('probe', 1)",
        "UPDATE rules.rules SET enabled = enabled",
        "DELETE FROM rules.campaigns WHERE false",
        "UPDATE rules.budgets SET global = global",
        "DELETE FROM rules.tiers WHERE false",
    ]
    conn = await asyncpg.connect(database_url)  # a plain session, as psql would be
    try:
        for change in changes:
            transaction = conn.transaction()
            await transaction.start()
            try:
                before = await conn.fetchval("SELECT generation FROM rules.config_generation")
                await conn.execute(change)
                after = await conn.fetchval("SELECT generation FROM rules.config_generation")
                assert after == before + 1, change
            finally:
                await transaction.rollback()  # leave nothing behind
    finally:
        await conn.close()
