"""Servers shared by the integration tests: one ledger, and rules calling it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from loyalty.ledger.v1 import ledger_pb2_grpc
from loyalty.mall.v1 import mall_pb2_grpc
from loyalty.rules.v1 import rules_pb2_grpc
from services.common.server import ServiceHost
from services.ledger.server import SPEC as LEDGER
from services.mall.server import SPEC as MALL
from services.rules.server import SPEC as RULES
from services.webhooks.server import SPEC as WEBHOOKS
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
        "RULES_REVIEW_PER_MINUTE": "30",
        "RULES_SETTLE_SECONDS": "0.2",
        # Every HTTP test user comes from 127.0.0.1: the shared-IP review must not depend on
        # how many tests ran before (shared devices are tested with the default).
        "RULES_ACCOUNTS_PER_IP": "100000",
    }
    async with running(RULES, database_url, env) as host:
        yield host


@pytest.fixture(scope="session")
async def rules(rules_host: ServiceHost) -> AsyncIterator[rules_pb2_grpc.RulesServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{rules_host.port}") as channel:
        yield rules_pb2_grpc.RulesServiceStub(channel)


@pytest.fixture(scope="session")
async def webhooks_host(database_url: str) -> AsyncIterator[ServiceHost]:
    async with running(WEBHOOKS, database_url) as host:  # only public endpoints
        yield host


@pytest.fixture(scope="session")
async def mall_host(
    database_url: str, ledger_host: ServiceHost, rules_host: ServiceHost
) -> AsyncIterator[ServiceHost]:
    env = {
        "LEDGER_ADDR": f"127.0.0.1:{ledger_host.port}",
        "RULES_ADDR": f"127.0.0.1:{rules_host.port}",
        "MALL_RECOVERY_SECONDS": "0.2",
        "MALL_RECOVERY_AFTER_SECONDS": "1",
    }
    async with running(MALL, database_url, env) as host:
        yield host


@pytest.fixture(scope="session")
async def mall(mall_host: ServiceHost) -> AsyncIterator[mall_pb2_grpc.MallServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mall_host.port}") as channel:
        yield mall_pb2_grpc.MallServiceStub(channel)


@pytest.fixture
def user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"
