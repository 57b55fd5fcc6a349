"""Delivery workers: lease due deliveries, POST them signed, record the outcome.

Any number of workers (and replicas) run at once: a delivery is leased with `FOR UPDATE SKIP
LOCKED`, and a member's next delivery waits while an earlier one is pending, so each member's
events reach an endpoint in order. A worker that dies mid-delivery leaves a lease that runs
out; the delivery is then sent again (at least once: receivers deduplicate on webhook-id).
Failures retry on the configured schedule with ±20 % jitter; when the last retry fails the
delivery is given up on and its subscription disabled, with the reason, for an operator.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from asyncpg import Record

from services.common.periodic import traced_work
from services.webhooks import measures, signing
from services.webhooks import repository as repo
from services.webhooks.config import WebhooksConfig
from services.webhooks.endpoints import EndpointRefused, Target, resolve

log = logging.getLogger(__name__)
OUTCOMES = {"DELIVERED": "delivered", "PENDING": "retry", "FAILED": "gave_up"}
RESPONSE_PREFIX = 256  # characters of an answer's body kept in the delivery log
USER_AGENT = "Points-Webhooks/1"


@dataclass(frozen=True)
class Outcome:
    status: int  # HTTP status, 0 when there was no answer
    latency_ms: int
    error: str = ""
    response: str = ""

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


class Deliverer:
    def __init__(self, pool: asyncpg.Pool, config: WebhooksConfig) -> None:
        self.pool = pool
        self.config = config
        self.http = httpx.AsyncClient(
            follow_redirects=False,
            timeout=config.timeout_seconds,
            headers={"user-agent": USER_AGENT, "content-type": "application/json"},
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def deliver_due(self) -> int:
        """One pass: lease what is due, send it, record it; repeat while there is more."""
        sent = 0
        while True:
            async with self.pool.acquire() as conn:
                leased = await repo.claim(conn, self.config.concurrency, self.config.lease_seconds)
            if not leased:
                return sent
            with traced_work("webhooks.deliver", attributes={"points.deliveries": len(leased)}):
                await asyncio.gather(*(self._deliver(row) for row in leased))
            sent += len(leased)

    async def _deliver(self, row: Record) -> None:
        outcome = await self.send(row)
        retries = self.config.retry_seconds
        attempt: int = row["attempts"]
        measures.attempt_duration.record(outcome.latency_ms / 1000)
        if outcome.delivered:
            state, delay = "DELIVERED", 0.0
        elif attempt <= len(retries):
            state, delay = "PENDING", retries[attempt - 1] * random.uniform(0.8, 1.2)
        else:
            state, delay = "FAILED", 0.0
        measures.attempts.add(1, {"points.outcome": OUTCOMES[state]})
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.record_attempt(
                conn,
                row["delivery_id"],
                attempt,
                outcome.status,
                outcome.latency_ms,
                outcome.error,
                outcome.response,
                state,
                delay,
            )
            if state == "FAILED":
                reason = (
                    f"DELIVERY_GAVE_UP: delivery {row['delivery_id']} failed {attempt} times, "
                    f"last: {outcome.error or outcome.status}"
                )
                await repo.disable(conn, row["subscription_id"], reason)
        if state == "FAILED":
            log.error(
                "webhook subscription disabled: a delivery failed every retry",
                extra={"subscription_id": row["subscription_id"], "url": row["url"]},
            )

    async def send(self, row: Record) -> Outcome:
        """One attempt: check where the URL now leads, then POST the signed envelope to that
        address (so the name cannot be re-pointed between the check and the connection)."""
        started = time.perf_counter()
        try:
            target = await resolve(row["url"], self.config.allowed_networks)
        except EndpointRefused as exc:
            return Outcome(0, 0, f"endpoint refused: {exc}")
        keys = [row["secret"], *([row["previous_secret"]] if row["previous_secret"] else [])]
        body: str = row["body"]
        headers = signing.headers(keys, str(row["event_id"]), int(time.time()), body)
        try:
            async with self.http.stream(
                "POST",
                _pinned(target),
                content=body.encode(),
                headers={**headers, "host": urlsplit(target.url).netloc},
                extensions={"sni_hostname": target.host},
            ) as answer:
                prefix = b""  # only the start of the answer is read, and kept
                async for chunk in answer.aiter_bytes():
                    prefix += chunk
                    if len(prefix) >= RESPONSE_PREFIX:
                        break
        except httpx.HTTPError as exc:
            elapsed = int((time.perf_counter() - started) * 1000)
            return Outcome(0, elapsed, f"{type(exc).__name__}: {exc}"[:500])
        elapsed = int((time.perf_counter() - started) * 1000)
        text = prefix[:RESPONSE_PREFIX].decode(errors="replace")
        return Outcome(answer.status_code, elapsed, "", text)


def _pinned(target: Target) -> str:
    """The URL with its host replaced by the checked address (Host and SNI keep the name)."""
    parts = urlsplit(target.url)
    address = str(target.address)
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def forget_old(pool: asyncpg.Pool, retention: timedelta, batch: int = 10_000) -> int:
    """Delete settled deliveries, then events nothing refers to, past `retention`: a batch per
    transaction, so a large backlog never holds locks long. Returns how many rows went."""
    forgotten = 0
    for forget in (repo.forget_settled, repo.forget_events):
        while True:
            async with pool.acquire() as conn:
                deleted = await forget(conn, retention, batch)
            forgotten += deleted
            if deleted < batch:
                break
    return forgotten
