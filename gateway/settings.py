"""Gateway settings from the environment (shares the chassis' parsing and naming)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.settings import DEFAULT_PORTS, Env, TelemetrySettings, peer_address

BACKENDS = ("ledger", "rules", "mall")


@dataclass(frozen=True)
class GatewaySettings:
    telemetry: TelemetrySettings
    host: str
    port: int
    backends: dict[str, str]  # service name -> host:port
    backend_timeout_seconds: float

    @classmethod
    def from_env(cls, source: Mapping[str, str] | None = None) -> GatewaySettings:
        env = Env(source)
        return cls(
            telemetry=TelemetrySettings.from_env("gateway", env),
            host=env.text("BIND_HOST", "127.0.0.1"),
            port=env.integer("GATEWAY_PORT", DEFAULT_PORTS["gateway"], maximum=65535),
            backends={name: peer_address(name, source) for name in BACKENDS},
            backend_timeout_seconds=env.number("BACKEND_TIMEOUT_SECONDS", 1.0, minimum=0.01),
        )
