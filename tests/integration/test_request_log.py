"""The request log (idempotency of RPCs without a row of their own) on a real `requests`
table: a duplicate in flight is refused, not run twice; a dead claim is taken over once; a
claim whose work could not finish is released for the retry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from google.protobuf.wrappers_pb2 import StringValue

from services.common import errors
from services.common.idempotency import LEASE, RequestLog

TABLE = Path(__file__).resolve().parents[2] / "services/mall/migrations/0003_requests.sql"


@pytest.fixture
async def log(private_database: str) -> AsyncIterator[RequestLog]:
    pool = await asyncpg.create_pool(private_database, min_size=1, max_size=4)
    await pool.execute(TABLE.read_text())
    yield RequestLog(pool)
    await pool.close()


class Work:
    """Work that counts its runs and, when asked, waits to be let go."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.runs = 0
        self.gate = gate
        self.started = asyncio.Event()

    async def __call__(self) -> StringValue:
        self.runs += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        return StringValue(value=f"run {self.runs}")


def call(
    log: RequestLog, work: Work, key: str = "k-1", payload: str = "a"
) -> asyncio.Task[StringValue]:
    request = StringValue(value=payload)
    return asyncio.create_task(log.run("u-1", key, "Confirm", request, StringValue, work))


async def test_a_duplicate_in_flight_is_refused_and_then_gets_the_outcome(log: RequestLog) -> None:
    gate = asyncio.Event()
    work = Work(gate)
    first = call(log, work)
    await work.started.wait()
    with pytest.raises(errors.Aborted) as refused:
        await call(log, work)
    assert refused.value.reason == "REQUEST_IN_PROGRESS"
    gate.set()
    assert (await first).value == "run 1"
    assert (await call(log, work)).value == "run 1"
    assert work.runs == 1


async def test_another_payload_in_flight_is_a_reused_key(log: RequestLog) -> None:
    gate = asyncio.Event()
    work = Work(gate)
    first = call(log, work)
    await work.started.wait()
    with pytest.raises(errors.AlreadyExists) as refused:
        await call(log, work, payload="b")
    assert refused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    gate.set()
    await first


async def test_a_dead_claim_is_taken_over_by_one_caller(log: RequestLog) -> None:
    await call(log, Work())  # the record's shape; then make it a claim that died long ago
    await log.pool.execute(
        "UPDATE requests SET response = NULL, created_at = now() - $1::interval * 2", LEASE
    )
    gate = asyncio.Event()
    work = Work(gate)
    racers = [call(log, work) for _ in range(4)]
    await work.started.wait()
    await asyncio.sleep(0.1)
    gate.set()
    outcomes = await asyncio.gather(*racers, return_exceptions=True)
    assert work.runs == 1
    assert sum(isinstance(o, StringValue) for o in outcomes) == 1
    assert all(isinstance(o, StringValue | errors.Aborted) for o in outcomes)


@pytest.mark.parametrize(
    "failure", [errors.Unavailable("DEPENDENCY_UNAVAILABLE", "ledger down"), RuntimeError("bug")]
)
async def test_work_that_could_not_finish_leaves_the_key_free(
    log: RequestLog, failure: Exception
) -> None:
    async def broken() -> StringValue:
        raise failure

    with pytest.raises(type(failure)):
        await log.run("u-1", "k-2", "Confirm", StringValue(value="a"), StringValue, broken)
    work = Work()
    assert (await call(log, work, key="k-2")).value == "run 1"


async def test_a_business_refusal_is_recorded_and_replayed(log: RequestLog) -> None:
    runs = 0

    async def refuse() -> StringValue:
        nonlocal runs
        runs += 1
        raise errors.FailedPrecondition("NOT_CANCELLABLE", "already shipped")

    for _ in range(2):
        with pytest.raises(errors.FailedPrecondition) as refused:
            await log.run("u-1", "k-3", "Cancel", StringValue(value="a"), StringValue, refuse)
        assert refused.value.reason == "NOT_CANCELLABLE"
    assert runs == 1
