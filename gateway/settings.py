"""Gateway settings from the environment (shares the chassis' parsing and naming)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.catalog import SERVICES
from services.common.settings import (
    DEFAULT_PORTS,
    Env,
    SettingsError,
    TelemetrySettings,
    peer_address,
)

BACKENDS = tuple(s.name for s in SERVICES)
DEV_SECRET = "points-development-secret-do-not-use-in-production"


ASYMMETRIC = ("RS256", "ES256")


@dataclass(frozen=True)
class AuthSettings:
    """How bearer tokens are verified: HS256 with a shared secret, or RS256/ES256 (what
    identity providers issue) with a public key in PEM or the provider's JWKS URL."""

    algorithm: str
    key: str  # the HS256 secret or the public key (PEM); empty when keys come from a JWKS URL
    issuer: str | None
    audience: str | None
    jwks_url: str | None = None
    # A token whose `kid` is not in the cached key set (the provider rotated its key) fetches
    # the set again at once, but not more often than this, so bogus kids cannot flood it.
    jwks_refresh_seconds: float = 10.0
    roles_claim: str = "roles"  # the claim naming an operator's roles (gateway/roles.py)
    adjustment_limit: int = 1000  # points an adjustment moves without a second person

    @classmethod
    def from_env(cls, env: Env, environment: str) -> AuthSettings:
        algorithm = env.choice("GATEWAY_JWT_ALGORITHM", "HS256", ("HS256", *ASYMMETRIC))
        jwks_url = env.optional("GATEWAY_JWKS_URL")
        if algorithm in ASYMMETRIC:
            if jwks_url is None and env.optional("GATEWAY_JWT_PUBLIC_KEY") is None:
                raise SettingsError(
                    f"{algorithm} needs GATEWAY_JWKS_URL or GATEWAY_JWT_PUBLIC_KEY (PEM)"
                )
            if jwks_url is not None and not jwks_url.startswith(("https://", "http://")):
                raise SettingsError(f"GATEWAY_JWKS_URL must be an http(s) URL, got {jwks_url!r}")
            key = (env.optional("GATEWAY_JWT_PUBLIC_KEY") or "").replace("\\n", "\n")
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
            jwks_url=jwks_url if algorithm in ASYMMETRIC else None,
            jwks_refresh_seconds=env.number("GATEWAY_JWKS_REFRESH_SECONDS", 10.0, minimum=0.0),
            roles_claim=env.text("GATEWAY_ROLES_CLAIM", "roles"),
            adjustment_limit=env.integer("GATEWAY_ADJUSTMENT_LIMIT", 1000, minimum=0),
        )


# Signs the console's session cookies in development only (gateway/oidc.py).
DEV_SESSION_SECRET = "points-development-session-secret-not-for-production"


@dataclass(frozen=True)
class OidcSettings:
    issuer: str | None
    client_id: str
    client_secret: str
    redirect_url: str
    session_secret: str
    session_seconds: int

    @classmethod
    def from_env(cls, env: Env, development: bool) -> OidcSettings:
        issuer = env.optional("GATEWAY_OIDC_ISSUER")
        default_secret = DEV_SESSION_SECRET if development else ""
        settings = cls(
            issuer=issuer.rstrip("/") if issuer else None,
            client_id=env.optional("GATEWAY_OIDC_CLIENT_ID") or "",
            client_secret=env.optional("GATEWAY_OIDC_CLIENT_SECRET") or "",
            redirect_url=env.optional("GATEWAY_OIDC_REDIRECT_URL") or "",
            session_secret=env.optional("GATEWAY_SESSION_SECRET") or default_secret,
            session_seconds=env.integer("GATEWAY_SESSION_SECONDS", 8 * 3600, minimum=60),
        )
        if not issuer:
            return settings
        if not (settings.client_id and settings.client_secret and settings.redirect_url):
            raise SettingsError(
                "GATEWAY_OIDC_ISSUER needs GATEWAY_OIDC_CLIENT_ID, GATEWAY_OIDC_CLIENT_SECRET "
                "and GATEWAY_OIDC_REDIRECT_URL"
            )
        if len(settings.session_secret) < 32:
            raise SettingsError("GATEWAY_SESSION_SECRET must be at least 32 characters")
        return settings

    @property
    def secure(self) -> bool:
        return self.redirect_url.startswith("https://")


@dataclass(frozen=True)
class EdgeLimits:
    """What the gateway reads from a client before refusing it."""

    max_header_bytes: int  # all request headers together (431 above)
    max_body_bytes: int  # one request body (413 above)


@dataclass(frozen=True)
class GatewaySettings:
    telemetry: TelemetrySettings
    host: str
    port: int
    backends: dict[str, str]  # service name -> host:port
    backend_timeout_seconds: float
    # Operators' writes: rarer and heavier than a member's call (a rule save rebuilds the
    # program, a subscription resolves its host), so a busy machine must not turn them into 504s.
    admin_timeout_seconds: float
    auth: AuthSettings
    sse_keepalive_seconds: float  # idle Server-Sent Event streams get a comment this often
    limits: EdgeLimits
    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated addresses
    # or networks, "*" for any). The client address feeds risk rules: a spoofed header from
    # anyone else is ignored and the connection's own address is used.
    forwarded_allow_ips: str
    # One log line per request: off by default (the proxy in front keeps access logs, and a
    # line per request costs the hot path more than the request's own JSON).
    access_log: bool
    # How long a member's check-in, tier and redemptions are reused while their points stand
    # still (gateway/wallet_parts.py); 0 fetches them for every wallet.
    wallet_parts_seconds: float
    oidc: OidcSettings  # operators' sign-in with the company's identity provider

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
            admin_timeout_seconds=env.number("ADMIN_TIMEOUT_SECONDS", 10.0, minimum=0.01),
            auth=AuthSettings.from_env(env, telemetry.environment),
            sse_keepalive_seconds=env.number("GATEWAY_SSE_KEEPALIVE_SECONDS", 15.0, minimum=0.1),
            forwarded_allow_ips=env.text("FORWARDED_ALLOW_IPS", "127.0.0.1,::1"),
            access_log=env.choice("GATEWAY_ACCESS_LOG", "OFF", ("OFF", "ON")) == "ON",
            wallet_parts_seconds=env.number("GATEWAY_WALLET_PARTS_SECONDS", 10.0, minimum=0.0),
            oidc=OidcSettings.from_env(env, telemetry.environment == "development"),
            limits=EdgeLimits(
                max_header_bytes=env.integer(
                    "GATEWAY_MAX_HEADER_BYTES", 16_384, minimum=1024, maximum=1_048_576
                ),
                max_body_bytes=env.integer(
                    "GATEWAY_MAX_BODY_BYTES", 1_048_576, minimum=1024, maximum=104_857_600
                ),
            ),
        )
