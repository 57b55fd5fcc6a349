"""The rules service as mall and the gateway call it: typed calls, typed refusals."""

from __future__ import annotations

from dataclasses import dataclass

from loyalty.rules.v1 import rules_pb2 as rpb
from loyalty.rules.v1 import rules_pb2_grpc
from services.common import catalog
from services.common.errors import FailedPrecondition
from services.common.peers import PeerClient

SERVICE = catalog.RULES.full_name


@dataclass(frozen=True)
class Risk:
    """A risk decision for one action: allowed, or why not."""

    allowed: bool
    decision: str  # ALLOW, REVIEW or DENY
    reasons: tuple[str, ...]


class RulesClient(PeerClient["rules_pb2_grpc.RulesServiceAsyncStub"]):
    service = catalog.RULES
    stub_type = rules_pb2_grpc.RulesServiceStub

    async def check_risk(
        self, user_id: str, action: str, device_id: str = "", ip: str = ""
    ) -> Risk:
        """The one risk check every spend path asks (redemptions, checkout, lottery draws).
        Anything but ALLOW refuses the spend: a spend has no review queue to wait in."""
        reply = await self.call(
            self.stub.CheckRisk,
            rpb.CheckRiskRequest(user_id=user_id, device_id=device_id, ip=ip, action=action),
        )
        decision = rpb.Decision.Name(reply.decision).removeprefix("DECISION_")
        return Risk(reply.decision == rpb.DECISION_ALLOW, decision, tuple(reply.reasons))

    async def require_allowed(
        self, user_id: str, action: str, device_id: str = "", ip: str = ""
    ) -> None:
        """Refuse the spend (FAILED_PRECONDITION, RISK_DENIED) unless risk allows it."""
        risk = await self.check_risk(user_id, action, device_id, ip)
        if not risk.allowed:
            raise FailedPrecondition(
                "RISK_DENIED",
                f"this member cannot {action} now",
                {"decision": risk.decision, "reasons": ",".join(risk.reasons)},
            )

    async def user_tier_id(self, user_id: str) -> str:
        reply = await self.call(self.stub.GetUserTier, rpb.GetUserTierRequest(user_id=user_id))
        return reply.tier.tier_id
