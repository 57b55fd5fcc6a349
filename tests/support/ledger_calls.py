"""Small helpers for calling the ledger in tests."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import grpc
import pytest

from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc
from services.common.errors import RichError, parse_rpc_error

Stub: TypeAlias = "ledger_pb2_grpc.LedgerServiceAsyncStub"


def rid() -> str:
    return uuid.uuid4().hex


def in_seconds(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def credit(
    ledger: Stub,
    user: str,
    amount: int,
    *,
    expires_in_days: float | None = None,
    expires_in_seconds: float | None = None,
    matures_in_seconds: float | None = None,
    source: str = "test",
    request_id: str | None = None,
) -> pb.CreditResponse:
    request = pb.CreditRequest(
        request_id=request_id or rid(), user_id=user, amount=amount, source=source
    )
    if expires_in_days is not None:
        request.expire_time.FromDatetime(in_seconds(expires_in_days * 86400))
    if expires_in_seconds is not None:
        request.expire_time.FromDatetime(in_seconds(expires_in_seconds))
    if matures_in_seconds is not None:
        request.mature_time.FromDatetime(in_seconds(matures_in_seconds))
    return await ledger.Credit(request)


async def debit(
    ledger: Stub, user: str, amount: int, request_id: str | None = None
) -> pb.DebitResponse:
    return await ledger.Debit(
        pb.DebitRequest(request_id=request_id or rid(), user_id=user, amount=amount)
    )


async def balance(ledger: Stub, user: str, days: int = 0) -> pb.Balance:
    return (
        await ledger.GetBalance(pb.GetBalanceRequest(user_id=user, expiring_within_days=days))
    ).balance


async def fails(call: Awaitable[Any]) -> RichError:
    """Await `call` and return the rich error it must fail with."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return parse_rpc_error(caught.value)


async def audit_clean(ledger: Stub) -> None:
    report = await ledger.Audit(pb.AuditRequest())
    assert report.ok, list(report.violations)
