"""Invitations: the referrer earns once per invitee; self-invites and loops are refused."""

from __future__ import annotations

import uuid

from loyalty.rules.v1 import rules_pb2 as pb
from tests.support.ledger_calls import Stub as LedgerStub
from tests.support.ledger_calls import balance
from tests.support.rules_calls import RulesStub, event


def register(user: str, referrer: str) -> pb.RecordEventRequest:
    request = event(user, pb.EVENT_TYPE_REGISTER)
    request.event.referrer_id = referrer
    return request


async def test_referrer_earns_once_when_the_invitee_completes_the_profile(
    rules: RulesStub, ledger: LedgerStub
) -> None:
    await rules.UpsertRule(
        pb.UpsertRuleRequest(
            rule=pb.Rule(
                rule_id="invite-profile",
                kind=pb.RULE_KIND_INVITE,
                event_type=pb.EVENT_TYPE_PROFILE_COMPLETED,
                enabled=True,
                invite=pb.InviteParams(points=300),
                daily_cap=600,
            )
        )
    )
    alice, bob, carol = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("alice", "bob", "carol"))
    assert (await rules.RecordEvent(register(bob, alice))).referral == "RECORDED"
    assert (await rules.RecordEvent(register(carol, bob))).referral == "RECORDED"
    assert (await rules.RecordEvent(register(bob, carol))).referral == "ALREADY_REFERRED"
    assert (await rules.RecordEvent(register(alice, carol))).referral == "INVITE_LOOP"
    assert (await rules.RecordEvent(register(alice, alice))).referral == "SELF_INVITE"

    # (Registering may itself pay a new-user bonus: compare balances around each step.)
    alice_before = (await balance(ledger, alice)).available
    bob_before = (await balance(ledger, bob)).available
    done = await rules.RecordEvent(event(bob, pb.EVENT_TYPE_PROFILE_COMPLETED))
    [award] = done.awards
    assert (award.points, award.beneficiary_user_id) == (300, alice)
    again = await rules.RecordEvent(event(bob, pb.EVENT_TYPE_PROFILE_COMPLETED))
    assert again.awards[0].reason == "ALREADY_REWARDED"
    nobody = await rules.RecordEvent(event(alice, pb.EVENT_TYPE_PROFILE_COMPLETED))
    assert nobody.awards[0].reason == "NO_REFERRER"
    assert (await balance(ledger, alice)).available == alice_before + 300
    assert (await balance(ledger, bob)).available == bob_before  # the referrer is paid
    await rules.RecordEvent(event(carol, pb.EVENT_TYPE_PROFILE_COMPLETED))
    assert (await balance(ledger, bob)).available == bob_before + 300


async def test_a_burst_of_invitations_goes_to_review(rules: RulesStub) -> None:
    referrer = f"recruiter-{uuid.uuid4().hex[:8]}"
    decisions = [
        (await rules.RecordEvent(register(f"recruit-{uuid.uuid4().hex[:8]}", referrer)))
        for _ in range(11)
    ]
    # RULES_INVITES_PER_DAY defaults to 10: the eleventh invitation in a day is reviewed.
    assert [d.decision for d in decisions[:10]] == [pb.DECISION_ALLOW] * 10
    assert (decisions[10].decision, list(decisions[10].risk_reasons)) == (
        pb.DECISION_REVIEW,
        ["INVITE_BURST"],
    )
