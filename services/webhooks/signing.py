"""Standard Webhooks signatures: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`
under the secret (`whsec_` and the key in base64)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, message_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(keys: list[str], message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The three headers of a delivery; one signature per secret in use (a rotation's overlap
    signs with both, and a receiver accepts either)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(key, message_id, timestamp, body) for key in keys),
    }
