"""How a service calls another: one channel recipe and one error contract.

A peer's failure reaches the caller as one of two typed exceptions, never as a raw
`AioRpcError` whose reason string each caller would parse:

- `PeerUnavailable`: transient (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, RESOURCE_EXHAUSTED).
  The channel already retried UNAVAILABLE, ABORTED and RESOURCE_EXHAUSTED with backoff and
  jitter within the call's deadline (gRPC's retry policy in the service config: every call we
  make to a peer carries a request id, so repeating it is safe); DEADLINE_EXCEEDED means that
  deadline is spent, so the channel does not retry it. Either way, whoever owns the work tries
  again later, with the same request id.
- `PeerRefused`: permanent. The peer understood the call and said no (a business reason or an
  invalid request); the same call will never succeed. The caller settles the outcome
  (compensates, records a dead letter). Each peer's client module subclasses it per reason
  the peer documents (see `ledger_client.py`, `rules_client.py`).

A refusal that escapes a handler is answered with the peer's code and reason (see
`ErrorInterceptor`), never INTERNAL.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

import grpc

from loyalty.common.v1 import common_pb2
from services.common import catalog
from services.common.errors import (
    DomainError,
    RichError,
    Translatable,
    Unavailable,
    domain_error_for,
    parse_rpc_error,
)

TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
# The peer may or may not have applied the call: treated as transient, so it is retried (with
# the same request id) rather than compensated as if it had been refused.
OUTCOME_UNKNOWN = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED}
)
DEFAULT_TIMEOUT = 5.0
RECONNECT_BACKOFF_MAX_MS = 2000


class PeerError(Translatable):
    """A call to another service failed; `error` is what the peer said."""

    def __init__(self, peer: str, error: RichError) -> None:
        super().__init__(f"{peer}: {error.code.name} {error.reason}: {error.message}")
        self.peer = peer
        self.error = error

    @property
    def reason(self) -> str:
        return self.error.reason or self.error.code.name

    @property
    def metadata(self) -> Mapping[str, str]:
        return self.error.metadata


class PeerUnavailable(PeerError):
    """Transient: the peer could not answer in time; the same call may succeed later. Also
    INTERNAL and UNKNOWN: the peer may have applied the call, so only a retry settles it."""

    def as_domain_error(self) -> DomainError:
        return Unavailable(
            "DEPENDENCY_UNAVAILABLE",
            "a service this call needs is unavailable; retry with the same request id",
            {"peer": self.peer},
        )


class PeerRefused(PeerError):
    """Permanent: the peer refused the call; repeating it unchanged never succeeds."""

    def as_domain_error(self) -> DomainError:
        # A peer's invalid-argument is not the caller's: the call cannot be done as asked.
        cls = domain_error_for(self.error.code)
        return cls(self.reason, self.error.message, {**self.metadata, "peer": self.peer})


def retry_config(service: str, attempts: int = 4) -> str:
    """A service config balancing calls over every address of the target (replicas) and
    retrying transient failures of every method of `service`."""
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [
                {
                    "name": [{"service": service}],
                    "retryPolicy": {
                        "maxAttempts": attempts,
                        "initialBackoff": "0.05s",
                        "maxBackoff": "1s",
                        "backoffMultiplier": 3,
                        "retryableStatusCodes": ["UNAVAILABLE", "ABORTED", "RESOURCE_EXHAUSTED"],
                    },
                }
            ],
        }
    )


def open_channel(address: str, service: str) -> grpc.aio.Channel:
    """A channel to `address` (a target from `settings.peer_address`: one name or a list of
    replicas) that balances over its replicas and retries `service`'s transient failures."""
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.enable_retries", 1),
            ("grpc.service_config", retry_config(service)),
            # After an outage of every replica, reconnect within seconds, not gRPC's default
            # of up to two minutes of backoff.
            ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MAX_MS),
        ],
    )


Response = TypeVar("Response")


Stub = TypeVar("Stub")


class PeerClient(Generic[Stub]):
    """Base of a typed client of one of the suite's services: its channel (balanced over the
    replicas, retrying transient failures) and stub, deadlines, and failures turned into typed
    exceptions. A subclass names its `service` and `stub_type`."""

    service: ClassVar[catalog.Service]
    stub_type: ClassVar[type[Any]]  # the generated *ServiceStub
    default_timeout: ClassVar[float] = DEFAULT_TIMEOUT
    # The peer's documented reasons and the exception each becomes (else PeerRefused).
    refusals: ClassVar[Mapping[str, type[PeerRefused]]] = {}

    def __init__(self, address: str, timeout: float | None = None) -> None:
        self.timeout = self.default_timeout if timeout is None else timeout
        self.peer = self.service.name
        self.channel = open_channel(address, self.service.full_name)
        self.stub: Stub = self.stub_type(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def call(self, method: Callable[..., Awaitable[Response]], request: Any) -> Response:
        try:
            return await method(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise self.translate(exc) from None

    def translate(self, exc: grpc.aio.AioRpcError) -> PeerError:
        return self.classify(parse_rpc_error(exc))

    def classify(self, error: RichError) -> PeerError:
        if error.code in TRANSIENT or error.code in OUTCOME_UNKNOWN:
            return PeerUnavailable(self.peer, error)
        return self.refusals.get(error.reason, PeerRefused)(self.peer, error)

    def batch_error(self, error: common_pb2.Error) -> PeerError:
        """The typed exception for one failed item of a batch reply."""
        code = next((c for c in grpc.StatusCode if c.value[0] == error.code), None)
        rich = RichError(
            code or grpc.StatusCode.UNKNOWN,
            error.message,
            error.reason,
            self.peer,
            dict(error.metadata),
        )
        return self.classify(rich)
