"""Exactly-once execution of mutating requests.

The member row is locked first, so concurrent duplicates of one request_id queue up behind
each other; the first applies, the rest find its recorded outcome. A business failure is
recorded too (inside a savepoint that discarded the failed changes), so a replay returns the
same error. A different payload under a used id is refused with IDEMPOTENCY_KEY_REUSED.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf.message import Message

from services.common import errors
from services.common.db import Conn
from services.ledger import repository as repo

M = TypeVar("M", bound=Message)

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


def fingerprint(method: str, request: Message) -> bytes:
    return hashlib.sha256(
        method.encode() + b"\0" + request.SerializeToString(deterministic=True)
    ).digest()


def _encode_error(error: errors.DomainError) -> dict[str, Any]:
    encoded: dict[str, Any] = {
        "type": type(error).__name__,
        "reason": error.reason,
        "message": error.message,
        "metadata": dict(error.metadata),
    }
    if isinstance(error, errors.InvalidArgument):
        encoded["violations"] = [[v.field, v.description] for v in error.violations]
    return encoded


def _decode_error(encoded: dict[str, Any]) -> errors.DomainError:
    cls = _ERROR_TYPES.get(encoded["type"], errors.FailedPrecondition)
    if cls is errors.InvalidArgument:
        violations = [errors.FieldViolation(f, d) for f, d in encoded.get("violations", [])]
        return errors.InvalidArgument(
            encoded["reason"], encoded["message"], encoded["metadata"], violations
        )
    return cls(encoded["reason"], encoded["message"], encoded["metadata"])


def key_reused(request_id: str) -> errors.AlreadyExists:
    return errors.AlreadyExists(
        "IDEMPOTENCY_KEY_REUSED",
        "request_id was already used with a different request",
        {"request_id": request_id},
    )


async def replay(
    conn: Conn,
    user_id: str,
    request_id: str,
    fingerprint_: bytes,
    response_type: type[M],
) -> M | errors.DomainError | None:
    """The recorded outcome of this request, or None when it is new."""
    prior = await repo.find_request(conn, user_id, request_id)
    if prior is None:
        return None
    if bytes(prior["payload_sha256"]) != fingerprint_:
        return key_reused(request_id)
    if prior["response"] is not None:
        return response_type.FromString(bytes(prior["response"]))
    return _decode_error(json.loads(prior["error"]))


async def execute_once(
    conn: Conn,
    *,
    user_id: str,
    request_id: str,
    method: str,
    request: Message,
    response_type: type[M],
    body: Callable[[Conn, datetime], Awaitable[M]],
) -> M:
    """Run `body` once per (user_id, request_id), inside one transaction (or savepoint)."""
    print_ = fingerprint(method, request)
    outcome: M | errors.DomainError
    async with conn.transaction():
        now = await repo.lock_members(conn, [user_id])
        prior = await replay(conn, user_id, request_id, print_, response_type)
        if prior is not None:
            outcome = prior
        else:
            try:
                async with conn.transaction():  # a savepoint: failures leave no changes behind
                    outcome = await body(conn, now)
            except errors.DomainError as exc:
                outcome = exc
                await repo.save_request(
                    conn, user_id, request_id, method, print_, None, _encode_error(exc), False
                )
            else:
                await repo.save_request(
                    conn,
                    user_id,
                    request_id,
                    method,
                    print_,
                    outcome.SerializeToString(),
                    None,
                    True,
                )
    if isinstance(outcome, errors.DomainError):
        raise outcome
    return outcome
