"""Opaque page tokens (AIP-158): the position after the last item, as base64 of a JSON list
of strings. Every List RPC encodes and checks them here."""

from __future__ import annotations

import base64
import binascii
import json

from services.common.errors import FieldViolation, InvalidArgument


def invalid_token() -> InvalidArgument:
    return InvalidArgument.fields(
        [FieldViolation("page_token", "is not a token returned by this RPC")]
    )


def encode_token(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode()


def decode_token(token: str, parts: int) -> list[str]:
    """The `parts` strings of a token from `encode_token`; INVALID_ARGUMENT for anything else
    (including NUL characters, which PostgreSQL text cannot hold)."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise invalid_token() from None
    if (
        not isinstance(decoded, list)
        or len(decoded) != parts
        or not all(isinstance(p, str) and "\x00" not in p for p in decoded)
    ):
        raise invalid_token()
    return decoded
