"""Idempotency keys shared by every service: payload fingerprints and the reuse error."""

from __future__ import annotations

import hashlib

from google.protobuf.message import Message

from services.common.errors import AlreadyExists


def fingerprint(method: str, request: Message) -> bytes:
    """A stable hash of what was asked, to tell a replay from a reused key."""
    return hashlib.sha256(
        method.encode() + b"\0" + request.SerializeToString(deterministic=True)
    ).digest()


def key_reused(key: str) -> AlreadyExists:
    return AlreadyExists(
        "IDEMPOTENCY_KEY_REUSED",
        "this idempotency key was already used with a different request",
        {"key": key},
    )
