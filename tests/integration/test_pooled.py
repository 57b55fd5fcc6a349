"""The ledger's concurrency cases again, with the ledger behind PgBouncer in transaction mode
(scripts/pooler.py): its pool without kept prepared statements or startup settings, its
LISTEN connection and migrations on the direct URL."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from loyalty.ledger.v1 import ledger_pb2_grpc
from scripts import devdb
from scripts.pooler import Pooler, alias
from services.ledger.server import SPEC as LEDGER
from tests.integration.ledger.test_ledger_concurrency import (
    test_50_concurrent_replays_apply_once,
    test_100_concurrent_debits_of_10_against_500,
    test_concurrent_holds_never_over_reserve,
)
from tests.support.hosts import free_port, running
from tests.support.ledger_calls import Stub, credit

pytestmark = pytest.mark.skipif(shutil.which("pgbouncer") is None, reason="make test-tools")
__all__ = [
    "test_50_concurrent_replays_apply_once",
    "test_100_concurrent_debits_of_10_against_500",
    "test_concurrent_holds_never_over_reserve",
]


@pytest.fixture(scope="module")
def pooler(database_url: str) -> Iterator[Pooler]:
    parts = urlsplit(database_url)
    run_dir = Path(tempfile.mkdtemp(prefix="points-pooler-"))
    owner = devdb._owner()
    if owner is not None:  # PgBouncer refuses to run as root
        shutil.chown(run_dir, owner, owner)
    started = Pooler(run_dir, free_port(), parts.username or "postgres", owner, parts.path[1:])
    started.start(f"{parts.hostname}:{parts.port or 5432}")
    yield started
    started.stop()
    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
async def ledger(pooler: Pooler, database_url: str) -> AsyncIterator[Stub]:
    env = {
        "LEDGER_DATABASE_URL": pooler.url("ledger"),
        "DATABASE_DIRECT_URL": database_url,
        "DB_POOL_MODE": "transaction",
        "DB_POOL_MIN": "4",
    }
    async with (
        running(LEDGER, database_url, env) as host,
        grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel,
    ):
        yield ledger_pb2_grpc.LedgerServiceStub(channel)


async def test_the_ledger_pool_goes_through_the_pooler(
    pooler: Pooler, ledger: Stub, user: str
) -> None:
    await credit(ledger, user, 5)
    clients = [row for row in pooler.show("CLIENTS") if alias("ledger") in row]
    assert len(clients) >= 4  # the pool's connections, at least DB_POOL_MIN
