"""Balance change fan-out: one LISTEN connection per process, many watchers.

Writers call pg_notify('ledger_balance', user_id) inside their transaction, so a
notification arrives only after the change committed. Each watcher gets a queue of "changed"
signals; it re-reads the balance itself, so coalesced signals never lose a change.

The LISTEN connection is kept: when it drops (the database restarted, a proxy cut it, its
backend was terminated) or stops answering a probe, it is opened again with backoff, and
every watcher is signalled once it is back, because notifications sent in the gap are lost
and only a re-read tells a watcher what changed. While it is down the service reports
NOT_SERVING (`health`), so a load balancer sends watchers to a replica that hears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
from opentelemetry.instrumentation.utils import suppress_instrumentation

from services.common.db import Conn

log = logging.getLogger(__name__)
CHANNEL = "ledger_balance"
PROBE_SECONDS = 5.0  # how often an idle connection is asked whether it still answers
MAX_BACKOFF_SECONDS = 2.0
Health = Callable[[str, bool], Awaitable[None]]  # (what, lost)


async def _no_health(what: str, lost: bool) -> None:
    return None


class BalanceWatchers:
    def __init__(self, database_url: str, schema: str, health: Health = _no_health) -> None:
        self._url = database_url
        self._schema = schema
        self._health = health
        self._conn: Conn | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watchers: dict[str, set[asyncio.Queue[None]]] = defaultdict(set)

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._keep_listening(), name="balance-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _connect(self) -> None:
        with suppress_instrumentation():  # plumbing, not a request's work
            conn = await asyncpg.connect(
                self._url, server_settings={"application_name": f"points-{self._schema}-listen"}
            )
            try:
                lost = asyncio.Event()  # this connection's own: a late signal of an old one
                conn.add_termination_listener(lambda _conn: lost.set())  # cannot reach it
                await conn.add_listener(CHANNEL, self._notified)
            except BaseException:
                conn.terminate()  # cut while it was being set up: start again from scratch
                raise
        self._lost = lost
        self._conn = conn

    async def _keep_listening(self) -> None:
        """Forever: wait until the connection is lost (or fails a probe), then reconnect."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), PROBE_SECONDS)
            if not self._lost.is_set() and await self._answers():
                continue
            log.warning("balance listener lost; reconnecting", extra={"channel": CHANNEL})
            await self._health("balance listener", True)
            if self._conn is not None:
                self._conn.terminate()
            await self._reconnect()
            self._wake_all()
            await self._health("balance listener", False)
            log.info("balance listener back", extra={"channel": CHANNEL})

    async def _answers(self) -> bool:
        assert self._conn is not None
        try:
            with suppress_instrumentation():
                await asyncio.wait_for(self._conn.execute("SELECT 1"), 2.0)
        except Exception:  # any failure of the probe means: reconnect
            return False
        return True

    async def _reconnect(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._connect()
                return
            except Exception as exc:  # whatever cut it, try again: never give up
                log.info("balance listener not back yet", extra={"error": repr(exc)})
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    def _wake_all(self) -> None:
        for queues in self._watchers.values():
            for queue in queues:
                if queue.empty():
                    queue.put_nowait(None)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        for queue in self._watchers.get(str(payload), ()):
            if queue.empty():  # one pending signal is enough: the watcher re-reads everything
                queue.put_nowait(None)

    @asynccontextmanager
    async def watch(self, user_id: str) -> AsyncIterator[asyncio.Queue[None]]:
        queue: asyncio.Queue[None] = asyncio.Queue(maxsize=1)
        self._watchers[user_id].add(queue)
        try:
            yield queue
        finally:
            self._watchers[user_id].discard(queue)
            if not self._watchers[user_id]:
                del self._watchers[user_id]
