"""Idempotency in the ledger: the replay of recorded outcomes (the recording itself is shared,
see `services/common/idempotency.py`). How requests claim keys and record outcomes exactly
once, many per transaction, is in `engine.py`."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import Message

from services.common import errors
from services.common.db import Conn
from services.common.idempotency import (
    decode_error,
    encode_error,
    fingerprint,
    key_reused,
    outcome_of,
)
from services.ledger import requests_repository as requests_repo

M = TypeVar("M", bound=Message)


async def replay(
    conn: Conn,
    user_id: str,
    request_id: str,
    fingerprint_: bytes,
    method: str,
    response_type: type[M],
) -> M | errors.DomainError | None:
    """The recorded outcome of this request, or None when it is new."""
    prior = await requests_repo.find_request(conn, user_id, request_id)
    if prior is None:
        return None
    return outcome_of(prior, method, fingerprint_, response_type)


__all__ = ["decode_error", "encode_error", "fingerprint", "key_reused", "outcome_of", "replay"]
