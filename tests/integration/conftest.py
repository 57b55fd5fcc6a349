"""Servers shared by the integration tests: one ledger, and rules calling it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.rules.v1 import rules_pb2_grpc
from services.common.server import ServiceHost
from services.ledger.server import SPEC as LEDGER
from services.rules.server import SPEC as RULES
from tests.support.hosts import running


@pytest.fixture(scope="session")
async def ledger_host(database_url: str) -> AsyncIterator[ServiceHost]:
    async with running(LEDGER, database_url, {"LEDGER_HOLD_SWEEP_SECONDS": "0.2"}) as host:
        yield host


@pytest.fixture(scope="session")
async def ledger(ledger_host: ServiceHost) -> AsyncIterator[ledger_pb2_grpc.LedgerServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger_host.port}") as channel:
        yield ledger_pb2_grpc.LedgerServiceStub(channel)


@pytest.fixture(scope="session")
async def rules_host(database_url: str, ledger_host: ServiceHost) -> AsyncIterator[ServiceHost]:
    env = {
        "LEDGER_ADDR": f"127.0.0.1:{ledger_host.port}",
        "RULES_VELOCITY_PER_MINUTE": "40",
        "RULES_SETTLE_SECONDS": "0.2",
    }
    async with running(RULES, database_url, env) as host:
        yield host


@pytest.fixture(scope="session")
async def rules(rules_host: ServiceHost) -> AsyncIterator[rules_pb2_grpc.RulesServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{rules_host.port}") as channel:
        yield rules_pb2_grpc.RulesServiceStub(channel)


@pytest.fixture
def user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"
