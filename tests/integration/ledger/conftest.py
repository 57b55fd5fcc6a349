from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from loyalty.ledger.v1 import ledger_pb2_grpc
from services.common.server import ServiceHost
from services.ledger.server import SPEC
from tests.support.hosts import running


@pytest.fixture(scope="session")
async def ledger_host(database_url: str) -> AsyncIterator[ServiceHost]:
    async with running(SPEC, database_url, {"LEDGER_HOLD_SWEEP_SECONDS": "0.2"}) as host:
        yield host


@pytest.fixture(scope="session")
async def ledger(ledger_host: ServiceHost) -> AsyncIterator[ledger_pb2_grpc.LedgerServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger_host.port}") as channel:
        yield ledger_pb2_grpc.LedgerServiceStub(channel)


@pytest.fixture
def user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"
