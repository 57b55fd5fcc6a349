"""The suite's processes, listed once: each gRPC service's name, default port, module, proto
package, gRPC service name, error reasons and the events it writes; and the gateway. Settings'
ports, the gateway's backends and reasons, the CLI, `make run`'s supervisor, the Kubernetes
manifests, health checks and the outbox all derive from this list."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from loyalty.common.v1 import common_pb2
from loyalty.ledger.v1 import ledger_pb2
from loyalty.mall.v1 import mall_pb2
from loyalty.rules.v1 import rules_pb2
from loyalty.webhooks.v1 import webhooks_pb2


@dataclass(frozen=True)
class Service:
    name: str
    port: int  # the default; <NAME>_PORT overrides it
    messages: ModuleType  # the *_pb2 module of loyalty.<name>.v1
    grpc_service: str  # the service's name in its proto package
    events: tuple[str, ...] = ()  # event types its outbox writes (events/schemas/<type>.json)

    @property
    def module(self) -> str:
        """What `python -m` runs."""
        return f"services.{self.name}.server"

    @property
    def full_name(self) -> str:
        """The gRPC service's full name (health checks, channels' retry policy)."""
        return str(self.messages.DESCRIPTOR.services_by_name[self.grpc_service].full_name)

    @property
    def reasons(self) -> list[str]:
        """The reasons of its ErrorReason enum, without the prefix."""
        return _reasons(self.messages)


def _reasons(messages: ModuleType) -> list[str]:
    return [n.removeprefix("ERROR_REASON_") for n in messages.ErrorReason.keys()[1:]]


LEDGER = Service(
    "ledger",
    50051,
    ledger_pb2,
    "LedgerService",
    (
        "points.credited",
        "points.debited",
        "points.reversed",
        "points.expired",
        "points.expiring_soon",
        "points.pending_matured",
    ),
)
RULES = Service(
    "rules",
    50052,
    rules_pb2,
    "RulesService",
    (
        "tier.changed",
        "review.opened",
        "review.decided",
        "budget.exhausted",
        "experiment.started",
        "experiment.concluded",
    ),
)
MALL = Service(
    "mall",
    50053,
    mall_pb2,
    "MallService",
    (
        "redemption.completed",
        "redemption.failed",
        "redemption.cancelled",
        "shipment.updated",
        "lottery.won",
    ),
)
WEBHOOKS = Service("webhooks", 50054, webhooks_pb2, "WebhooksService", ("audit.recorded",))
SERVICES = (LEDGER, RULES, MALL, WEBHOOKS)
BY_NAME = {s.name: s for s in SERVICES}

GATEWAY = "gateway"
GATEWAY_MODULE = "gateway.main"
GATEWAY_PORT = 8080

# Reasons every service may give (the common package's ErrorReason enum).
COMMON_REASONS = _reasons(common_pb2)
