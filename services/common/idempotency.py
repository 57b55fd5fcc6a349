"""One idempotency design for every service: a request id (client-chosen, unique per member)
with a fingerprint of the payload and the recorded outcome.

- The same id with the same payload answers the recorded outcome: the response, or the same
  business error. The same id with another payload (or method) fails ALREADY_EXISTS, reason
  IDEMPOTENCY_KEY_REUSED.
- Where a request creates a row of its own (a redemption, a draw, a deduction, an event), that
  row holds the id and the fingerprint. Where it does not (confirming or cancelling), the
  `requests` table does, through `RequestLog`: the id is claimed before the work runs and the
  outcome recorded after. A duplicate that arrives while the claim is fresh (younger than
  `LEASE`) fails ABORTED, reason REQUEST_IN_PROGRESS, instead of running the work twice; it
  gets the outcome when it retries. A claim left without an outcome (its caller crashed) is
  taken over, by one caller only, once the lease has run out. The ledger records many
  outcomes per transaction the same way (engine.py), in the transaction of the work itself.
- Records older than the retention period are forgotten (`forget`, run by a periodic job):
  after that, a reused id counts as a new request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar

import asyncpg
from asyncpg import Record
from google.protobuf.message import Message

from services.common import errors
from services.common.db import Conn
from services.common.errors import Aborted, AlreadyExists
from services.common.periodic import Job
from services.common.settings import Env
from services.common.validation import Checker

if TYPE_CHECKING:
    from services.common.server import Runtime

M = TypeVar("M", bound=Message)

# How long a claim without an outcome counts as still running: longer than any deadline our
# callers set, so that only an attempt that died is taken over.
LEASE: Final = timedelta(seconds=60)


def fingerprint(method: str, request: Message) -> bytes:
    """A stable hash of what was asked, to tell a replay from a reused key."""
    return hashlib.sha256(
        method.encode() + b"\0" + request.SerializeToString(deterministic=True)
    ).digest()


def in_progress(key: str) -> Aborted:
    return Aborted(
        "REQUEST_IN_PROGRESS",
        "a request with this idempotency key is still running; retry it in a moment",
        {"key": key},
    )


def key_reused(key: str) -> AlreadyExists:
    return AlreadyExists(
        "IDEMPOTENCY_KEY_REUSED",
        "this idempotency key was already used with a different request",
        {"key": key},
    )


_ERROR_TYPES: dict[str, type[errors.DomainError]] = {
    cls.__name__: cls
    for cls in (
        errors.FailedPrecondition,
        errors.NotFound,
        errors.AlreadyExists,
        errors.ResourceExhausted,
        errors.InvalidArgument,
    )
}


def encode_error(error: errors.DomainError) -> str:
    encoded: dict[str, Any] = {
        "type": type(error).__name__,
        "reason": error.reason,
        "message": error.message,
        "metadata": dict(error.metadata),
    }
    if isinstance(error, errors.InvalidArgument):
        encoded["violations"] = [[v.field, v.description] for v in error.violations]
    return json.dumps(encoded)


def decode_error(encoded: dict[str, Any]) -> errors.DomainError:
    cls = _ERROR_TYPES.get(encoded["type"], errors.FailedPrecondition)
    if cls is errors.InvalidArgument:
        violations = [errors.FieldViolation(f, d) for f, d in encoded.get("violations", [])]
        return errors.InvalidArgument(
            encoded["reason"], encoded["message"], encoded["metadata"], violations
        )
    return cls(encoded["reason"], encoded["message"], encoded["metadata"])


def outcome_of(
    prior: Record, method: str, fingerprint_: bytes, response_type: type[M]
) -> M | errors.DomainError:
    """What a recorded request answered, or IDEMPOTENCY_KEY_REUSED for another payload."""
    if prior["method"] != method or bytes(prior["payload_sha256"]) != fingerprint_:
        return key_reused(prior["request_id"])
    if prior["response"] is not None:
        return response_type.FromString(bytes(prior["response"]))
    if prior["error"] is not None:
        return decode_error(json.loads(prior["error"]))
    raise RuntimeError("a committed request has no recorded outcome")


async def forget(conn: Conn, older_than: timedelta, limit: int) -> int:
    """Delete up to `limit` records older than the retention; how many went."""
    deleted: int = await conn.fetchval(
        """
        WITH old AS (
            SELECT user_id, request_id FROM requests
            WHERE created_at < now() - $1::interval ORDER BY created_at LIMIT $2
        ), gone AS (
            DELETE FROM requests r USING old
            WHERE r.user_id = old.user_id AND r.request_id = old.request_id RETURNING 1
        )
        SELECT count(*) FROM gone
        """,
        older_than,
        limit,
    )
    return deleted


async def forget_all(pool: asyncpg.Pool, older_than: timedelta, batch: int = 10_000) -> int:
    """Forget every record older than the retention, a batch per transaction."""
    forgotten = 0
    while True:
        async with pool.acquire() as conn:
            deleted = await forget(conn, older_than, batch)
        forgotten += deleted
        if deleted < batch:
            return forgotten


def keep_requests(runtime: Runtime) -> None:
    """Forget the service's request ids older than `<SERVICE>_REQUEST_RETENTION_DAYS` (90 by
    default), hourly and once across replicas. Every service with a `requests` table calls this
    where it wires itself (`server.py`), so no such table grows forever."""
    name = runtime.settings.service.upper()
    days = Env(runtime.settings.source).integer(f"{name}_REQUEST_RETENTION_DAYS", 90, minimum=1)
    retention = timedelta(days=days)
    runtime.every(
        Job(
            "request-retention",
            3600.0,
            lambda: forget_all(runtime.pool, retention),
            once_across_replicas=True,
        )
    )


def idempotent_admin(
    response_type: type[M],
) -> Callable[[Callable[[Any, Any, Any], Awaitable[M]]], Callable[[Any, Any, Any], Awaitable[M]]]:
    """Make an operator's RPC replay by its request_id (the servicer has `self.requests`)."""

    def decorate(
        method: Callable[[Any, Any, Any], Awaitable[M]],
    ) -> Callable[[Any, Any, Any], Awaitable[M]]:
        async def wrapped(self: Any, request: Any, context: Any) -> M:
            log: RequestLog = self.requests
            return await log.admin(
                method.__name__, request, response_type, lambda: method(self, request, context)
            )

        wrapped.__name__ = method.__name__
        wrapped.__doc__ = method.__doc__
        return wrapped

    return decorate


class RequestLog:
    """Idempotency for RPCs without a row of their own, on the service's `requests` table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def run(
        self,
        user_id: str,
        request_id: str,
        method: str,
        request: Message,
        response_type: type[M],
        work: Callable[[], Awaitable[M]],
    ) -> M:
        print_ = fingerprint(method, request)
        async with self.pool.acquire() as conn:
            prior = await conn.fetchrow(
                """
                WITH claimed AS (
                    INSERT INTO requests (user_id, request_id, method, payload_sha256)
                    VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING request_id
                )
                SELECT request_id, method, payload_sha256, response, error FROM requests
                WHERE user_id = $1 AND request_id = $2 AND NOT EXISTS (SELECT FROM claimed)
                """,
                user_id,
                request_id,
                method,
                print_,
            )
            if prior is not None and prior["response"] is None and prior["error"] is None:
                if prior["method"] != method or bytes(prior["payload_sha256"]) != print_:
                    raise key_reused(request_id)
                if not await self._take_over(conn, user_id, request_id):
                    raise in_progress(request_id)
                prior = None
        if prior is not None:
            outcome = outcome_of(prior, method, print_, response_type)
            if isinstance(outcome, errors.DomainError):
                raise outcome
            return outcome
        try:
            response = await work()
        except errors.DomainError as error:
            if isinstance(error, errors.Unavailable):
                await self._release(user_id, request_id)
            else:
                await self._record(user_id, request_id, None, encode_error(error))
            raise
        except BaseException:  # a bug, or the caller gave up (cancelled): nothing was recorded
            await self._release(user_id, request_id)
            raise
        await self._record(user_id, request_id, response.SerializeToString(), None)
        return response

    async def admin(
        self,
        method: str,
        request: Message,
        response_type: type[M],
        work: Callable[[], Awaitable[M]],
    ) -> M:
        """An operator's call: its key is shared by all operators (scope ""); without a key
        the call runs unprotected (gRPC callers may omit it; the gateway always sends one)."""
        request_id: str = getattr(request, "request_id", "")
        if not request_id:
            return await work()
        checker = Checker()
        checker.request_id(request_id)
        checker.done()
        return await self.run("", request_id, method, request, response_type, work)

    @staticmethod
    async def _take_over(conn: Conn, user_id: str, request_id: str) -> bool:
        """Claim again a request whose claim ran out without an outcome; False while it is
        fresh or another caller took it over first (created_at is the claim's time)."""
        taken: bool = await conn.fetchval(
            "UPDATE requests SET created_at = now() WHERE user_id = $1 AND request_id = $2 "
            "AND response IS NULL AND error IS NULL AND created_at < now() - $3::interval "
            "RETURNING true",
            user_id,
            request_id,
            LEASE,
        )
        return bool(taken)

    async def _release(self, user_id: str, request_id: str) -> None:
        """Drop a claim whose work did not finish (a peer or the database was down), so that
        the caller's retry runs at once; if this fails too, the lease runs out instead."""
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(
                    "DELETE FROM requests WHERE user_id = $1 AND request_id = $2 "
                    "AND response IS NULL AND error IS NULL",
                    user_id,
                    request_id,
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass

    async def _record(
        self, user_id: str, request_id: str, response: bytes | None, error: str | None
    ) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE requests SET response = $3, error = $4::jsonb "
                "WHERE user_id = $1 AND request_id = $2 AND response IS NULL AND error IS NULL",
                user_id,
                request_id,
                response,
                error,
            )
