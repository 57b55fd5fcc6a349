"""One periodic-task runner for every background job (sweeps, recovery, expiry, retention).

A job is one pass of work; the runner repeats it forever:
- every failure is logged and the next pass waits longer (exponential backoff with jitter, up
  to `max_backoff`), so a database blip slows a job down and never ends it;
- a job marked `once_across_replicas` takes a PostgreSQL advisory lock for its pass (a
  transaction-level lock on a connection of its own: it is released when the pass ends or
  the connection dies, so a SIGKILLed replica never keeps it), and replicas that do not get
  the lock skip the pass;
- a runner that dies anyway (a bug in the runner itself) turns health NOT_SERVING, see
  `server.Runtime.every`;
- a pass is not traced: an idle poll exports nothing. A job that finds work wraps that work
  in `traced_work`, which starts a trace of its own, linked to the requests that caused the
  work where the job knows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation

from services.common.db import try_lock_for_transaction

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)


class Passes:
    """How many passes of a job have finished in this process, and a way to wait for more:
    "the sweep has run twice since" is a condition a test (or an operator's probe) can wait
    on, where a sleep would only guess."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Condition()

    async def finished(self) -> None:
        async with self._changed:
            self.count += 1
            self._changed.notify_all()

    async def more(self, passes: int = 2) -> None:
        """Return once `passes` more passes have finished than when called."""
        wanted = self.count + passes
        async with self._changed:
            await self._changed.wait_for(lambda: self.count >= wanted)


@dataclass(frozen=True)
class Job:
    name: str
    interval: float  # seconds between passes when all is well
    run: Callable[[], Awaitable[object]]  # one pass
    once_across_replicas: bool = False
    max_backoff: float | None = None  # default: 16 intervals, at most a minute
    # Also one pass at start, before the service reports SERVING (what writes need in place).
    at_start: bool = False
    # Set to start the next pass now instead of at the end of the interval (a notification
    # said there is work); the interval stays the fallback when no signal comes.
    wake: asyncio.Event | None = None
    passes: Passes = field(default_factory=Passes, compare=False, repr=False)

    @property
    def backoff_cap(self) -> float:
        if self.max_backoff is not None:
            return self.max_backoff
        return max(self.interval, min(60.0, 16 * self.interval))


def next_delay(job: Job, failures: int) -> float:
    """Seconds before the next pass: the interval, doubled per consecutive failure up to the
    cap, spread by ±20 % so replicas and jobs do not fall into step."""
    base: float = job.interval * 2.0 ** min(failures, 30)
    return max(job.interval, min(job.backoff_cap, base)) * random.uniform(0.8, 1.2)


@contextmanager
def traced_work(
    name: str,
    links: Sequence[trace.Link] = (),
    attributes: Mapping[str, str | int] | None = None,
) -> Iterator[trace.Span]:
    """The work a pass found, as a trace of its own (instrumentation back on inside)."""
    token = otel_context.attach(otel_context.Context())  # no parent, nothing suppressed
    try:
        with _tracer.start_as_current_span(
            name, links=links, attributes=attributes, kind=trace.SpanKind.INTERNAL
        ) as span:
            yield span
    finally:
        otel_context.detach(token)


async def run_once(job: Job, pool: asyncpg.Pool) -> bool:
    """One pass, untraced (see `traced_work`); False when another replica holds the lock."""
    with suppress_instrumentation():
        return await _run_once(job, pool)


async def _run_once(job: Job, pool: asyncpg.Pool) -> bool:
    if not job.once_across_replicas:
        await job.run()
        return True
    async with pool.acquire() as conn, conn.transaction():
        if not await try_lock_for_transaction(conn, f"points.job.{job.name}"):
            return False
        await job.run()
        return True


async def _pause(job: Job, failures: int) -> None:
    """Until the next pass: the interval, or the job's wake-up if that comes first; after a
    failure, the whole backoff (a wake-up does not cut it short)."""
    delay = next_delay(job, failures)
    if failures or job.wake is None:
        await asyncio.sleep(delay)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(job.wake.wait(), delay)
    job.wake.clear()  # the coming pass answers every signal sent before it


async def run_forever(job: Job, pool: asyncpg.Pool) -> None:
    failures = 0
    while True:
        await _pause(job, failures)
        try:
            await run_once(job, pool)
        except Exception as exc:
            failures += 1
            log.warning(
                "background job failed; retrying with backoff",
                extra={"job": job.name, "failures": failures, "error": repr(exc)},
                exc_info=not isinstance(exc, (asyncpg.PostgresError, OSError)),
            )
        else:
            failures = 0
            await job.passes.finished()
