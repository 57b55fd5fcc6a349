"""Exactly-once batches: the one path by which mutations reach the database.

A batch is one transaction. It locks its members (sorted, so batches never deadlock), claims
every request key, replays keys already recorded, then applies the new operations in order:
consecutive credits together as set-based SQL (one balance update per member), anything else
one by one, inside a savepoint unless it changes nothing when it fails, so a business failure
leaves no trace. Every outcome, error or response, is recorded before commit, with the events
of the changes, in one statement; watchers hear about changed members after it.

Single RPCs reach this through `GroupCommit`, so concurrent requests share transactions;
`PostBatch` calls it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry import trace

from services.common.db import Conn
from services.common.errors import DomainError, ResourceExhausted
from services.common.telemetry import point_back
from services.ledger import events, idempotency, measures
from services.ledger import requests_repository as requests_repo
from services.ledger.operations import Operations

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)
Outcome = Message | DomainError


@dataclass(frozen=True)
class Mutation:
    """One kind of mutating request."""

    method: str
    check: Callable[[Any], None]
    response_type: type[Message]
    # Applies one request; None for credits, which are always applied set-based.
    apply: Callable[[Conn, datetime, Any], Awaitable[Message]] | None = None
    # Whether `apply` changes nothing when it fails (DomainError), so it needs no savepoint:
    # two round trips fewer for each debit and hold.
    atomic: bool = False


@dataclass
class Op:
    mutation: Mutation
    request: Any
    fingerprint: bytes = field(init=False)
    # The caller's trace context: group commit runs the SQL in a worker task, so the batch's
    # span is made a child of the first request and linked to the others.
    trace_context: otel_context.Context = field(default_factory=otel_context.get_current)

    def __post_init__(self) -> None:
        self.fingerprint = idempotency.fingerprint(self.mutation.method, self.request)

    @property
    def key(self) -> requests_repo.RequestKey:
        return (self.request.user_id, self.request.request_id)


class BatchEngine:
    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    async def run(self, conn: Conn, batch: Sequence[Op]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(batch)
        valid: list[int] = []
        for index, op in enumerate(batch):
            try:
                op.mutation.check(op.request)
            except DomainError as exc:  # malformed: answered, never recorded
                outcomes[index] = exc
            else:
                valid.append(index)
        first: dict[requests_repo.RequestKey, int] = {}
        for index in valid:
            first.setdefault(batch[index].key, index)
        if first:
            async with conn.transaction():
                applied = await self._apply(conn, batch, first, outcomes)
            measures.batch_size.record(len(batch))
            measures.count_flows(o for i in applied if isinstance(o := outcomes[i], Message))
        for index in valid:  # duplicates inside the batch answer like their first occurrence
            origin = first[batch[index].key]
            if index != origin:
                same = batch[index].fingerprint == batch[origin].fingerprint
                same = same and batch[index].mutation is batch[origin].mutation
                outcomes[index] = (
                    outcomes[origin]
                    if same
                    else idempotency.key_reused(batch[index].request.request_id)
                )
        assert all(o is not None for o in outcomes)
        return outcomes  # type: ignore[return-value]

    async def _apply(
        self,
        conn: Conn,
        batch: Sequence[Op],
        first: dict[requests_repo.RequestKey, int],
        outcomes: list[Outcome | None],
    ) -> list[int]:
        """Apply the batch's new operations; returns their indexes."""
        now, fresh = await requests_repo.lock_and_claim(
            conn,
            [(*key, batch[i].mutation.method, batch[i].fingerprint) for key, i in first.items()],
        )
        seen = [key for key in first if key not in fresh]
        if seen:
            priors = await requests_repo.find_requests(conn, seen)
            for key in seen:
                op = batch[first[key]]
                outcomes[first[key]] = idempotency.outcome_of(
                    priors[key], op.mutation.method, op.fingerprint, op.mutation.response_type
                )
        credits: list[int] = []
        for index in sorted(first[key] for key in fresh):
            op = batch[index]
            if op.mutation.apply is None:
                credits.append(index)
                continue
            await self._credits(conn, now, batch, credits, outcomes)
            credits = []
            try:
                if op.mutation.atomic:
                    outcomes[index] = await op.mutation.apply(conn, now, op.request)
                else:
                    async with conn.transaction():  # savepoint: a failure leaves no changes
                        outcomes[index] = await op.mutation.apply(conn, now, op.request)
            except DomainError as exc:
                outcomes[index] = exc
        await self._credits(conn, now, batch, credits, outcomes)
        await self.ops.fill_balances(
            conn,
            [
                (key[0], outcome)
                for key in fresh
                if isinstance(outcome := outcomes[first[key]], Message)
                and "balance" in outcome.DESCRIPTOR.fields_by_name
            ],
        )
        records: list[tuple[str, str, bytes | None, str | None]] = []
        changed = set()
        for key in fresh:
            outcome = outcomes[first[key]]
            if isinstance(outcome, DomainError):
                records.append((*key, None, idempotency.encode_error(outcome)))
            else:
                assert outcome is not None
                records.append((*key, outcome.SerializeToString(), None))
                changed.add(key[0])
        applied = [first[key] for key in fresh]
        announced = events.of_outcomes(o for i in applied if isinstance(o := outcomes[i], Message))
        await requests_repo.finish_requests(conn, records, announced, sorted(changed))
        return applied

    async def _credits(
        self,
        conn: Conn,
        now: datetime,
        batch: Sequence[Op],
        indexes: list[int],
        outcomes: list[Outcome | None],
    ) -> None:
        if not indexes:
            return
        results = await self.ops.credit_many(conn, now, [batch[i].request for i in indexes])
        for index, result in zip(indexes, results, strict=True):
            outcomes[index] = result


class GroupCommit:
    """Concurrent single requests share transactions (group commit).

    Workers take whatever has queued up (at most `max_batch`) as one batch; while a batch
    commits, the next one gathers. If a batch fails unexpectedly, its requests are retried
    one by one so a single bad request cannot fail its neighbours. At most `max_queued`
    requests wait; one more is refused OVERLOADED at once.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        engine: BatchEngine,
        workers: int = 4,
        max_batch: int = 128,
        max_queued: int = 4096,
    ) -> None:
        self._pool = pool
        self._engine = engine
        self._workers = workers
        self._max_batch = max_batch
        # Bounded: past this the database is not keeping up, and a caller told so at once
        # (RESOURCE_EXHAUSTED, retried with backoff) is better than memory growing unseen.
        self._queue: asyncio.Queue[tuple[Op, asyncio.Future[Outcome]]] = asyncio.Queue(max_queued)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"group-commit-{n}")
            for n in range(self._workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def submit(self, op: Op) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((op, future))
        except asyncio.QueueFull:
            raise ResourceExhausted(
                "OVERLOADED",
                "the ledger's write queue is full; retry with backoff and the same request id",
                {"queued": str(self._queue.qsize())},
            ) from None
        return await future

    async def _work(self) -> None:
        while True:
            items = [await self._queue.get()]
            while len(items) < self._max_batch and not self._queue.empty():
                items.append(self._queue.get_nowait())
            await self._commit(items)

    async def _commit(self, items: list[tuple[Op, asyncio.Future[Outcome]]]) -> None:
        first = items[0][0]
        links = [
            trace.Link(trace.get_current_span(op.trace_context).get_span_context())
            for op, _ in items[1:]
        ]
        try:
            with _tracer.start_as_current_span(
                "ledger.group_commit",
                context=first.trace_context,
                links=links,
                attributes={"points.batch_size": len(items)},
            ) as batch_span:
                point_back([op.trace_context for op, _ in items[1:]], batch_span)
                async with self._pool.acquire() as conn:
                    outcomes = await self._engine.run(conn, [op for op, _ in items])
        except Exception as exc:
            if len(items) > 1:
                log.warning("batch failed; retrying its requests one by one", exc_info=True)
                for item in items:
                    await self._commit([item])
                return
            if not items[0][1].done():
                items[0][1].set_exception(exc)
            return
        for (_, future), outcome in zip(items, outcomes, strict=True):
            if not future.done():  # the caller may have gone away
                future.set_result(outcome)
