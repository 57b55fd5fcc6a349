"""Balance change fan-out: many watchers on the process's one LISTEN connection.

Writers call pg_notify('ledger_balance', user_id) inside their transaction, so a
notification arrives only after the change committed. Each watcher gets a queue of "changed"
signals; it re-reads the balance itself, so coalesced signals never lose a change. When the
LISTEN connection comes back after a loss (`services/common/listen.py`), every watcher is
signalled: what changed in the gap was not announced.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.common.listen import Listener

CHANNEL = "ledger_balance"


class BalanceWatchers:
    def __init__(self, listener: Listener) -> None:
        self._watchers: dict[str, set[asyncio.Queue[None]]] = defaultdict(set)
        listener.listen(CHANNEL, self._notified)
        listener.on_reconnect(self._wake_all)

    def _wake_all(self) -> None:
        for queues in self._watchers.values():
            for queue in queues:
                _signal(queue)

    def _notified(self, user_id: str) -> None:
        for queue in self._watchers.get(user_id, ()):
            _signal(queue)

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


def _signal(queue: asyncio.Queue[None]) -> None:
    if queue.empty():  # one pending signal is enough: the watcher re-reads everything
        queue.put_nowait(None)
