"""One LISTEN connection per process, kept open: PostgreSQL notifications in, callbacks out.

A change that others should hear about at once calls pg_notify in its own transaction, so a
notification arrives only after the change committed (the ledger's balance changes, an outbox
that has events to hand on, deliveries that are due). Everything a process listens to shares
this one connection (`Runtime.listen` opens it).

The connection is kept: when it drops (the database restarted, a proxy cut it, its backend was
terminated) or stops answering a probe, it is opened again with backoff. Notifications sent in
the gap are lost, so once it is back every `on_reconnect` hook runs (the balance watchers
re-read, the relay looks at its outbox). While it is down the service reports NOT_SERVING
(`health`), so a load balancer sends callers to a replica that hears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

import asyncpg
from opentelemetry.instrumentation.utils import suppress_instrumentation

from services.common.db import Conn

log = logging.getLogger(__name__)
PROBE_SECONDS = 5.0  # how often an idle connection is asked whether it still answers
MAX_BACKOFF_SECONDS = 2.0
Health = Callable[[str, bool], Awaitable[None]]  # (what, lost)
Callback = Callable[[str], None]  # the notification's payload


async def _no_health(what: str, lost: bool) -> None:
    return None


class Listener:
    def __init__(self, database_url: str, name: str, health: Health = _no_health) -> None:
        self._url = database_url
        self._name = name  # the session's application_name: how an operator finds it
        self._health = health
        self._channels: dict[str, list[Callback]] = {}
        self._on_reconnect: list[Callable[[], None]] = []
        self._conn: Conn | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def listen(self, channel: str, callback: Callback) -> None:
        """Call `callback(payload)` on each notification on `channel` (before `start`)."""
        self._channels.setdefault(channel, []).append(callback)

    def on_reconnect(self, hook: Callable[[], None]) -> None:
        """Run `hook` each time the connection is back after a loss."""
        self._on_reconnect.append(hook)

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._keep_listening(), name=f"{self._name} listener")

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
                self._url, server_settings={"application_name": self._name}
            )
            try:
                lost = asyncio.Event()  # this connection's own: a late signal of an old one
                conn.add_termination_listener(lambda _conn: lost.set())  # cannot reach it
                for channel, callbacks in self._channels.items():
                    await conn.add_listener(channel, _dispatch(callbacks))
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
            log.warning("listener lost; reconnecting", extra={"listener": self._name})
            await self._health(self._name, True)
            if self._conn is not None:
                self._conn.terminate()
            await self._reconnect()
            for hook in self._on_reconnect:
                hook()
            await self._health(self._name, False)
            log.info("listener back", extra={"listener": self._name})

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
                log.info("listener not back yet", extra={"error": repr(exc)})
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)


def _dispatch(callbacks: list[Callback]) -> Callable[[object, int, str, object], None]:
    def notified(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        for callback in callbacks:
            callback(str(payload))

    return notified
