"""What every route module needs: the backends, the caller's idempotency key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Header, Request

from gateway.backends import Backends
from gateway.errors import HttpError


@dataclass(frozen=True)
class Client:
    """Where a request comes from, for the risk checks every earn and spend path passes."""

    device_id: str
    ip: str


def client(request: Request) -> Client:
    return Client(
        device_id=request.headers.get("x-device-id", "")[:128],
        ip=request.client.host if request.client else "",
    )


def backends(request: Request) -> Backends:
    found: Backends = request.app.state.backends
    return found


async def idempotency_key(
    key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> str:
    """Mutating routes require it; it becomes the backend's request_id / event_id."""
    if key is None or not 0 < len(key) <= 200:
        raise HttpError(
            400,
            "MISSING_IDEMPOTENCY_KEY",
            "mutating requests need an Idempotency-Key header (1-200 characters)",
        )
    return key
