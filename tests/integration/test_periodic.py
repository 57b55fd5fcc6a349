"""The chassis' periodic runner against a real PostgreSQL: backoff after failures, one replica
at a time for jobs that must run once, and health NOT_SERVING when a background task dies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2

from services.common import periodic
from services.common.db import create_pool
from services.common.periodic import Job
from services.common.server import Runtime, ServiceSpec
from tests.support.hosts import health_status, running


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, schema="public", application_name="t", min_size=1)
    yield pool
    await pool.close()


async def test_a_failing_job_keeps_running_and_recovers(pool: asyncpg.Pool) -> None:
    passes: list[str] = []

    async def flaky() -> None:
        if len(passes) < 3:
            passes.append("failed")
            raise asyncpg.PostgresConnectionError("connection lost")
        passes.append("ok")

    task = asyncio.create_task(periodic.run_forever(Job("flaky", 0.01, flaky), pool))
    for _ in range(300):
        if "ok" in passes:
            break
        await asyncio.sleep(0.01)
    assert not task.done()  # failures never end the job
    task.cancel()
    assert passes[:4] == ["failed", "failed", "failed", "ok"]


async def test_a_job_that_must_run_once_runs_on_one_replica_at_a_time(
    pool: asyncpg.Pool,
) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()
    runs = 0

    async def slow() -> None:
        nonlocal runs
        runs += 1
        inside.set()
        await release.wait()

    job = Job("singleton-test", 1.0, slow, once_across_replicas=True)
    first = asyncio.create_task(periodic.run_once(job, pool))
    await inside.wait()
    assert await periodic.run_once(job, pool) is False  # another replica holds the lock
    release.set()
    assert await first is True
    assert await periodic.run_once(job, pool) is True  # released with the pass
    assert runs == 2


async def test_a_background_task_that_dies_turns_health_not_serving(database_url: str) -> None:
    async def doomed() -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("a bug in a loop")

    async def register(server: grpc.aio.Server, runtime: Runtime) -> None:
        runtime.spawn("doomed", doomed)

    spec = ServiceSpec(name="doomed", service_names=(), register=register)
    async with running(spec, database_url) as host:
        address = f"127.0.0.1:{host.port}"
        assert await health_status(address) == health_pb2.HealthCheckResponse.SERVING
        for _ in range(50):
            if await health_status(address) == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            await asyncio.sleep(0.05)
        assert await health_status(address) == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_a_woken_job_runs_at_once_and_its_interval_is_only_the_fallback(
    pool: asyncpg.Pool,
) -> None:
    passes: list[int] = []
    ran = asyncio.Event()

    async def work() -> None:
        passes.append(len(passes))
        ran.set()

    wake = asyncio.Event()
    task = asyncio.create_task(periodic.run_forever(Job("woken", 3600.0, work, wake=wake), pool))
    try:
        for expected in (1, 2):
            ran.clear()
            wake.set()  # a notification: there is work
            await asyncio.wait_for(ran.wait(), 10)  # long before the hour's interval
            assert len(passes) == expected
    finally:
        task.cancel()
