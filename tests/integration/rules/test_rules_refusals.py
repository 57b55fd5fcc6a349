"""Awards the ledger refuses for good: settled once (not counted, never re-sent), recorded as
dead letters that operators list, retry and resolve. Late events still earn unexpired points."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc
import pytest

from loyalty.common.v1 import common_pb2
from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.rules.v1 import rules_pb2 as pb
from loyalty.rules.v1 import rules_pb2_grpc
from services.common.server import ServiceHost
from services.ledger.server import SPEC as LEDGER
from services.rules.server import SPEC as RULES
from tests.support.hosts import running
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import audit_clean, balance, fails
from tests.support.rules_calls import event

RulesStub: TypeAlias = "rules_pb2_grpc.RulesServiceAsyncStub"
REFUSED = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture
async def suite(private_database: str) -> AsyncIterator[tuple[RulesStub, LedgerStub, ServiceHost]]:
    """Rules and ledger on a database of their own (the issuance report counts everything)."""
    async with running(LEDGER, private_database) as ledger_host:
        env = {"LEDGER_ADDR": f"127.0.0.1:{ledger_host.port}", "RULES_SETTLE_SECONDS": "0.2"}
        async with (
            running(RULES, private_database, env) as rules_host,
            grpc.aio.insecure_channel(f"127.0.0.1:{rules_host.port}") as rules_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{ledger_host.port}") as ledger_channel,
        ):
            yield (
                rules_pb2_grpc.RulesServiceStub(rules_channel),
                ledger_pb2_grpc.LedgerServiceStub(ledger_channel),
                rules_host,
            )


async def open_letters(rules: RulesStub) -> list[common_pb2.DeadLetter]:
    reply = await rules.ListDeadLetters(
        pb.ListDeadLettersRequest(status=common_pb2.DEAD_LETTER_STATUS_OPEN)
    )
    return list(reply.dead_letters)


async def test_a_refused_award_becomes_a_dead_letter_and_is_not_counted(
    suite: tuple[RulesStub, LedgerStub, ServiceHost], user: str
) -> None:
    rules, ledger, rules_host = suite
    # 10^9 points per minor unit: a 10,000-unit purchase earns 10^13, above the ledger's cap.
    await rules.UpsertRule(
        pb.UpsertRuleRequest(
            rule=pb.Rule(
                rule_id="huge",
                kind=pb.RULE_KIND_PURCHASE,
                event_type=pb.EVENT_TYPE_PURCHASE,
                enabled=True,
                purchase=pb.PurchaseParams(points=10**9, per_amount_minor=1, currency="CNY"),
            )
        )
    )
    reply = await rules.RecordEvent(
        event(user, pb.EVENT_TYPE_PURCHASE, amount_minor=10_000, order_id="o-huge")
    )
    assert reply.total_points == 10**13
    for _ in range(100):
        letters = await open_letters(rules)
        if letters:
            break
        await asyncio.sleep(0.1)
    [letter] = letters
    assert (letter.user_id, letter.kind, letter.reason) == (user, "RULE_AWARD", "INVALID_ARGUMENT")
    assert letter.subject == f"event:{reply.event_id}:rule:huge"
    report = await rules.GetIssuanceReport(pb.GetIssuanceReportRequest())
    assert report.points_issued == 0  # the ledger holds none of it, and neither does the report
    assert (await balance(ledger, user)).available == 0
    await rules_host.job("settlement").passes.more(3)  # the refusal is not sent again
    [still] = await open_letters(rules)
    assert still.attempts == 1

    error = await fails(
        rules.RetryDeadLetter(pb.RetryDeadLetterRequest(user_id=user, letter_id=letter.letter_id))
    )
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "AWARD_REFUSED_AGAIN",
    )
    [again] = await open_letters(rules)
    assert again.attempts == 2

    resolve = pb.ResolveDeadLetterRequest(
        user_id=user,
        letter_id=letter.letter_id,
        note="rule misconfigured; compensated",
        request_id=f"resolve-{user}",
    )
    resolved = await rules.ResolveDeadLetter(resolve)
    assert resolved.dead_letter.status == common_pb2.DEAD_LETTER_STATUS_RESOLVED
    assert await rules.ResolveDeadLetter(resolve) == resolved  # a retry answers the same
    assert await open_letters(rules) == []
    error = await fails(
        rules.RetryDeadLetter(pb.RetryDeadLetterRequest(user_id=user, letter_id=letter.letter_id))
    )
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "DEAD_LETTER_NOT_OPEN",
    )
    await audit_clean(ledger)


async def test_a_late_event_earns_points_that_expire_after_they_are_credited(
    suite: tuple[RulesStub, LedgerStub, ServiceHost], user: str
) -> None:
    rules, ledger, _ = suite
    await rules.UpsertRule(
        pb.UpsertRuleRequest(
            rule=pb.Rule(
                rule_id="short-lived",
                kind=pb.RULE_KIND_ACTION,
                event_type=pb.EVENT_TYPE_SHARE,
                enabled=True,
                expiry_days=1,
                action=pb.ActionParams(points=30),
            )
        )
    )
    reply = await rules.RecordEvent(event(user, pb.EVENT_TYPE_SHARE, days_ago=3))
    assert reply.total_points == 30
    for _ in range(100):
        if (await balance(ledger, user)).available == 30:
            break
        await asyncio.sleep(0.1)
    assert (await balance(ledger, user)).available == 30
    assert await open_letters(rules) == []
    report = await rules.GetIssuanceReport(pb.GetIssuanceReportRequest())
    assert report.points_issued == 30
