"""The rules service as mall and the gateway call it: typed calls, typed refusals."""

from __future__ import annotations

from dataclasses import dataclass

from loyalty.rules.v1 import rules_pb2 as rpb
from loyalty.rules.v1 import rules_pb2_grpc
from services.common.errors import FailedPrecondition
from services.common.peers import PeerClient, open_channel

SERVICE = rpb.DESCRIPTOR.services_by_name["RulesService"].full_name


@dataclass(frozen=True)
class Risk:
    """A risk decision for one action: allowed, or why not."""

    allowed: bool
    decision: str  # ALLOW, REVIEW or DENY
    reasons: tuple[str, ...]


class RulesClient(PeerClient):
    peer = "rules"

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        super().__init__(timeout)
        self.channel = open_channel(address, SERVICE)
        self.stub = rules_pb2_grpc.RulesServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

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
