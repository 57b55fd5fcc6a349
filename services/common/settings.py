"""Settings read from environment variables, validated at start with errors naming the variable."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.common.catalog import GATEWAY, GATEWAY_PORT, SERVICES
from services.common.validation import ascii_number

DEFAULT_PORTS: dict[str, int] = {s.name: s.port for s in SERVICES} | {GATEWAY: GATEWAY_PORT}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


class Env:
    """Typed access to an environment mapping; every parse error names the variable."""

    def __init__(self, source: Mapping[str, str] | None = None) -> None:
        self._source = os.environ if source is None else source

    def text(self, name: str, default: str | None = None) -> str:
        value = self._source.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise SettingsError(f"{name} is required but not set")
        return default

    def optional(self, name: str) -> str | None:
        value = self._source.get(name, "").strip()
        return value or None

    def integer(
        self, name: str, default: int, *, minimum: int = 0, maximum: int = 2**31 - 1
    ) -> int:
        raw = self._source.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        raw = self._source.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None
        if value < minimum or value != value:  # value != value rejects NaN
            raise SettingsError(f"{name} must be a number >= {minimum}, got {raw!r}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).upper()
        if value not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def zone(self, name: str, default: str) -> ZoneInfo:
        """An IANA time zone, e.g. Asia/Shanghai."""
        value = self.text(name, default)
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"{name} is not a known time zone: {value!r}") from None

    def database_url(self, name: str, fallback: str = "DATABASE_URL") -> str:
        """The service's own URL (e.g. LEDGER_DATABASE_URL), else the shared DATABASE_URL."""
        used = name if self.optional(name) else fallback
        value = self.optional(used)
        if value is None:
            raise SettingsError(
                f"{name} (or {fallback}) is required: a postgresql:// URL "
                "(`make run` starts a local PostgreSQL and sets it for you)"
            )
        if not value.startswith(("postgresql://", "postgres://")):
            raise SettingsError(f"{used} must be a postgresql:// URL, got {value!r}")
        return value


@dataclass(frozen=True)
class TelemetrySettings:
    """What every process (service or gateway) needs for logs, traces and metrics."""

    service: str
    version: str
    environment: str
    log_level: str
    otlp_endpoint: str | None
    # Opt-in Prometheus endpoint (GET /metrics) of this process, e.g. LEDGER_METRICS_PORT.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    @classmethod
    def from_env(cls, service: str, env: Env) -> TelemetrySettings:
        return cls(
            service=service,
            version=env.text("POINTS_VERSION", "0.1.0"),
            environment=env.text("POINTS_ENV", "development"),
            log_level=env.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
            otlp_endpoint=env.optional("OTEL_EXPORTER_OTLP_ENDPOINT"),
            metrics_port=(
                env.integer(f"{service.upper()}_METRICS_PORT", 0, minimum=1, maximum=65535)
                if env.optional(f"{service.upper()}_METRICS_PORT")
                else None
            ),
            metrics_host=env.text("BIND_HOST", "127.0.0.1"),
        )


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of one gRPC service. Variables are prefixed by the service name (LEDGER_PORT)."""

    telemetry: TelemetrySettings
    host: str
    port: int
    database_url: str
    # Where session state can live (LISTEN, the migrations' lock): DATABASE_DIRECT_URL when
    # DATABASE_URL goes through a transaction pooler, else DATABASE_URL itself.
    direct_database_url: str
    # "transaction" behind a transaction-pooling PgBouncer (no prepared statements kept, no
    # startup settings; see services/common/db.py), else "session".
    pool_mode: str
    pool_min: int
    pool_max: int
    grace_seconds: float
    drain_seconds: float
    metrics_sample_seconds: float  # how often gauges of database state are sampled
    # Clients are asked to reconnect after this long, so they resolve the replicas again and
    # spread over ones added since (a stream in progress is never cut).
    max_connection_age_seconds: float
    # False: a deploy step applies migrations and the service waits for it (Kubernetes Job).
    migrate_on_start: bool
    # Everything the settings were read from, for service-specific settings read later.
    source: Mapping[str, str]

    @property
    def service(self) -> str:
        return self.telemetry.service

    @classmethod
    def from_env(cls, service: str, source: Mapping[str, str] | None = None) -> ServiceSettings:
        env = Env(source)
        prefix = service.upper()
        pool_min = env.integer("DB_POOL_MIN", 2, minimum=1, maximum=1000)
        database_url = env.database_url(f"{prefix}_DATABASE_URL")
        return cls(
            telemetry=TelemetrySettings.from_env(service, env),
            host=env.text("BIND_HOST", "127.0.0.1"),
            port=env.integer(f"{prefix}_PORT", DEFAULT_PORTS.get(service, 0), maximum=65535),
            database_url=database_url,
            direct_database_url=(
                env.database_url(f"{prefix}_DATABASE_DIRECT_URL", "DATABASE_DIRECT_URL")
                if env.optional(f"{prefix}_DATABASE_DIRECT_URL")
                or env.optional("DATABASE_DIRECT_URL")
                else database_url
            ),
            pool_mode=env.choice("DB_POOL_MODE", "SESSION", ("SESSION", "TRANSACTION")).lower(),
            pool_min=pool_min,
            pool_max=env.integer("DB_POOL_MAX", 20, minimum=pool_min, maximum=1000),
            grace_seconds=env.number("GRACE_PERIOD_SECONDS", 3.0),
            drain_seconds=env.number("DRAIN_SECONDS", 0.0),
            metrics_sample_seconds=env.number("METRICS_SAMPLE_SECONDS", 15.0, minimum=0.1),
            max_connection_age_seconds=env.number(
                "GRPC_MAX_CONNECTION_AGE_SECONDS", 300.0, minimum=1.0
            ),
            migrate_on_start=env.choice("MIGRATE_ON_START", "TRUE", ("TRUE", "FALSE")) == "TRUE",
            source=dict(os.environ if source is None else source),
        )


def peer_address(service: str, source: Mapping[str, str] | None = None) -> str:
    """Where to reach another service (LEDGER_ADDR etc., defaulting to its local port), as a
    gRPC target. One `host:port` is resolved by DNS: a name with an address per replica (a
    Kubernetes headless Service) reaches them all. A comma-separated list of `ip:port` is a
    static set of replicas. Calls balance round-robin over every address either way."""
    name = f"{service.upper()}_ADDR"
    address = Env(source).text(name, f"127.0.0.1:{DEFAULT_PORTS[service]}")
    return replica_target(name, address)


def replica_target(name: str, address: str) -> str:
    parts = [p.strip() for p in address.split(",") if p.strip()]
    if len(parts) == 1:
        return parts[0]
    families, listed = set(), []
    for part in parts:
        host, _, port = part.rpartition(":")
        if not host or ascii_number(port, 5) is None:
            raise SettingsError(f"{name}: {part!r} has no port")
        host = "127.0.0.1" if host == "localhost" else host
        try:
            families.add(ipaddress.ip_address(host.strip("[]")).version)
        except ValueError:
            raise SettingsError(
                f"{name}: a list of replicas takes IP addresses ({part!r}); for names, use "
                "one DNS name that resolves to every replica"
            ) from None
        listed.append(f"{host}:{port}")
    if len(families) > 1:
        raise SettingsError(f"{name}: a list of replicas is all IPv4 or all IPv6")
    return f"ipv{families.pop()}:{','.join(listed)}"
