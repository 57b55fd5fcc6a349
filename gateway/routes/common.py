"""What every route module needs: the backends, the caller's idempotency key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request

from gateway.auth import Principal, operator
from gateway.backends import Backends
from gateway.dialect import model_for
from loyalty.webhooks.v1 import webhooks_pb2 as wpb
from services.common.paging import EXPORT, LIST


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


async def backends(request: Request) -> Backends:
    # A coroutine: FastAPI runs a plain-function dependency in a worker thread, a hop that
    # cost more than the work on the hottest routes.
    found: Backends = request.app.state.backends
    return found


# Page sizes as the services take them (services/common/paging.py): one default, one maximum.
PageSize = Annotated[int, Query(ge=1, le=LIST.maximum)]
ExportPageSize = Annotated[int, Query(ge=1, le=EXPORT.maximum)]
PAGE_SIZE = LIST.default
EXPORT_PAGE_SIZE = EXPORT.default
PageToken = Annotated[str, Query(max_length=500)]

IDEMPOTENCY_KEY = "Idempotency-Key"


async def idempotency_key(
    key: Annotated[
        str,
        Header(
            alias=IDEMPOTENCY_KEY,
            min_length=1,
            max_length=200,
            description="the request's id, chosen by the client: the same key and body "
            "answer the same result; the same key with another body is 422",
        ),
    ],
) -> str:
    """Required on mutating routes; it becomes the backend's request_id / event_id (missing:
    400 MISSING_IDEMPOTENCY_KEY, see errors.py)."""
    return key


# The operator calling an admin route (scope `admin`): named in what they change.
Operator = Annotated[Principal, Depends(operator)]

# A risky change's answer while it waits for a second person (gateway/approvals.py).
WAITS: dict[int | str, dict[str, Any]] = {
    202: {"model": model_for(wpb.Approval.DESCRIPTOR), "description": "waits for approval"}
}
