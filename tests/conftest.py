"""Session-wide test setup: one tracer provider with an in-memory exporter, and a fresh
PostgreSQL database per test session (TEST_DATABASE_URL's server, else the embedded one)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Generator, Iterator

import asyncpg
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from scripts import devdb
from services.common.settings import TelemetrySettings
from services.common.telemetry import build_meter_provider, build_provider, instrument_libraries
from tests.support.databases import fresh_database, with_database

# Installed before any server, channel or pool exists: instrumentation patches at creation.
SETTINGS = TelemetrySettings("tests", "0.0.0", "test", "WARNING", None)
SPANS = InMemorySpanExporter()
trace.set_tracer_provider(build_provider(SETTINGS, (SimpleSpanProcessor(SPANS),)))
METRICS = InMemoryMetricReader()
metrics.set_meter_provider(build_meter_provider(SETTINGS, (METRICS,)))
instrument_libraries()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """TEST_DATABASE_URL, else the embedded cluster (stopped afterwards if we started it)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    was_running = devdb.is_running()
    yield devdb.start()
    if not was_running:
        devdb.stop()


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A database created for this test session and dropped after it."""
    name = f"points_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield with_database(server_url, name)
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def private_database(server_url: str) -> AsyncIterator[str]:
    """A database of its own: no other test's background loop (recovery, settlement) may
    finish this test's work for it."""
    async with fresh_database(server_url, "points_private") as url:
        yield url


@pytest.fixture
def spans() -> InMemorySpanExporter:
    SPANS.clear()
    return SPANS


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test (`rep_call`...), so fixtures can see a failure
    (the browser tests screenshot the page)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    """The tests' metric reader (cumulative: compare before and after)."""
    return METRICS
