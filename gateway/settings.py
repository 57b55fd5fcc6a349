"""Gateway settings from the environment (shares the chassis' parsing and naming)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.settings import (
    DEFAULT_PORTS,
    Env,
    SettingsError,
    TelemetrySettings,
    peer_address,
)

BACKENDS = ("ledger", "rules", "mall")
DEV_SECRET = "points-development-secret-do-not-use-in-production"


@dataclass(frozen=True)
class AuthSettings:
    """How bearer tokens are verified: HS256 with a shared secret, or RS256 with a public key."""

    algorithm: str
    key: str  # the HS256 secret or the RS256 public key (PEM)
    issuer: str | None
    audience: str | None

    @classmethod
    def from_env(cls, env: Env, environment: str) -> AuthSettings:
        algorithm = env.choice("GATEWAY_JWT_ALGORITHM", "HS256", ("HS256", "RS256"))
        if algorithm == "RS256":
            key = env.text("GATEWAY_JWT_PUBLIC_KEY")
        elif environment == "development":
            key = env.text("GATEWAY_JWT_SECRET", DEV_SECRET)
        else:  # never run a real deployment on the well-known development secret
            key = env.text("GATEWAY_JWT_SECRET")
        if algorithm == "HS256" and len(key) < 32:
            raise SettingsError("GATEWAY_JWT_SECRET must be at least 32 characters")
        return cls(
            algorithm=algorithm,
            key=key,
            issuer=env.optional("GATEWAY_JWT_ISSUER"),
            audience=env.optional("GATEWAY_JWT_AUDIENCE"),
        )


@dataclass(frozen=True)
class GatewaySettings:
    telemetry: TelemetrySettings
    host: str
    port: int
    backends: dict[str, str]  # service name -> host:port
    backend_timeout_seconds: float
    auth: AuthSettings
    sse_keepalive_seconds: float  # idle Server-Sent Event streams get a comment this often

    @classmethod
    def from_env(cls, source: Mapping[str, str] | None = None) -> GatewaySettings:
        env = Env(source)
        telemetry = TelemetrySettings.from_env("gateway", env)
        return cls(
            telemetry=telemetry,
            host=env.text("BIND_HOST", "127.0.0.1"),
            port=env.integer("GATEWAY_PORT", DEFAULT_PORTS["gateway"], maximum=65535),
            backends={name: peer_address(name, source) for name in BACKENDS},
            backend_timeout_seconds=env.number("BACKEND_TIMEOUT_SECONDS", 1.0, minimum=0.01),
            auth=AuthSettings.from_env(env, telemetry.environment),
            sse_keepalive_seconds=env.number("GATEWAY_SSE_KEEPALIVE_SECONDS", 15.0, minimum=0.1),
        )
