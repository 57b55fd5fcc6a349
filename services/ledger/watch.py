"""Balance change fan-out: one LISTEN connection per process, many watchers.

Writers call pg_notify('ledger_balance', user_id) inside their transaction, so a
notification arrives only after the change committed. Each watcher gets a queue of "changed"
signals; it re-reads the balance itself, so coalesced signals never lose a change.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from opentelemetry.instrumentation.utils import suppress_instrumentation

from services.common.db import Conn

log = logging.getLogger(__name__)
CHANNEL = "ledger_balance"


class BalanceWatchers:
    def __init__(self, database_url: str, schema: str) -> None:
        self._url = database_url
        self._schema = schema
        self._conn: Conn | None = None
        self._watchers: dict[str, set[asyncio.Queue[None]]] = defaultdict(set)

    async def start(self) -> None:
        with suppress_instrumentation():  # plumbing at start-up, not a request's work
            self._conn = await asyncpg.connect(
                self._url, server_settings={"application_name": f"points-{self._schema}-listen"}
            )
            await self._conn.add_listener(CHANNEL, self._notified)

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

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
