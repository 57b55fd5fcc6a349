"""Idempotency in the ledger: recorded outcomes (responses or errors) and their replay.

How requests claim keys and record outcomes exactly once is in `engine.py`.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from asyncpg import Record
from google.protobuf.message import Message

from services.common import errors
from services.common.db import Conn
from services.common.idempotency import fingerprint, key_reused
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


async def replay(
    conn: Conn,
    user_id: str,
    request_id: str,
    fingerprint_: bytes,
    method: str,
    response_type: type[M],
) -> M | errors.DomainError | None:
    """The recorded outcome of this request, or None when it is new."""
    prior = await repo.find_request(conn, user_id, request_id)
    if prior is None:
        return None
    return outcome_of(prior, method, fingerprint_, response_type)


__all__ = ["decode_error", "encode_error", "fingerprint", "key_reused", "outcome_of", "replay"]
