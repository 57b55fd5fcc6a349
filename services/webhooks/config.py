"""Webhook delivery settings, read from the environment."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from services.common.settings import Env, SettingsError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Seconds between attempts: about three days in all (Standard Webhooks' schedule, stretched).
DEFAULT_RETRIES = "5,300,1800,7200,18000,36000,43200,43200,43200,64800"


@dataclass(frozen=True)
class WebhooksConfig:
    # Networks an operator allows despite being private or loopback (a receiver on the same
    # host or network); empty: only public addresses.
    allowed_networks: tuple[Network, ...]
    retry_seconds: tuple[float, ...]  # the wait before each retry; their count is the retries
    timeout_seconds: float  # one attempt, connect to last byte
    poll_seconds: float  # how often workers look for due deliveries
    lease_seconds: float  # a delivery a dead worker was sending is retried after this
    concurrency: int  # deliveries in flight per worker
    # Delivered and given-up deliveries, and events no delivery waits for, are deleted after
    # this long: how far back ReplayWindow and the delivery log reach.
    retention: timedelta

    @classmethod
    def from_env(cls, source: Mapping[str, str] | None = None) -> WebhooksConfig:
        env = Env(source)
        networks = []
        for part in filter(None, (env.optional("WEBHOOKS_ALLOWED_NETWORKS") or "").split(",")):
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise SettingsError(
                    f"WEBHOOKS_ALLOWED_NETWORKS: {part!r} is not a network (e.g. 10.0.0.0/8)"
                ) from None
        try:
            retries = tuple(
                float(p) for p in env.text("WEBHOOKS_RETRY_SECONDS", DEFAULT_RETRIES).split(",")
            )
        except ValueError:
            raise SettingsError("WEBHOOKS_RETRY_SECONDS: comma-separated seconds") from None
        if not retries or any(r <= 0 for r in retries):
            raise SettingsError("WEBHOOKS_RETRY_SECONDS: one or more positive numbers")
        return cls(
            allowed_networks=tuple(networks),
            retry_seconds=retries,
            timeout_seconds=env.number("WEBHOOKS_TIMEOUT_SECONDS", 10.0, minimum=0.1),
            poll_seconds=env.number("WEBHOOKS_POLL_SECONDS", 1.0, minimum=0.05),
            lease_seconds=env.number("WEBHOOKS_LEASE_SECONDS", 60.0, minimum=1.0),
            concurrency=env.integer("WEBHOOKS_CONCURRENCY", 16, minimum=1, maximum=256),
            retention=timedelta(days=env.integer("WEBHOOKS_RETENTION_DAYS", 30, minimum=1)),
        )
