"""The grpc.aio server bootstrap every service shares.

Start: telemetry → pool → listen (health NOT_SERVING) → migrations → start hooks → SERVING.
Stop (SIGTERM/SIGINT): health NOT_SERVING → optional drain delay so load balancers notice →
stop accepting and let in-flight calls finish within the grace period → stop hooks → pool.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace

from services.common import periodic
from services.common.db import create_pool
from services.common.errors import ErrorInterceptor
from services.common.listen import Listener
from services.common.logs import configure_logging
from services.common.metrics import CallMetrics, SampledGauges, observe_pool
from services.common.migrations import (
    Migration,
    MigrationError,
    load_migrations,
    migrate,
    status,
)
from services.common.periodic import Job
from services.common.settings import ServiceSettings, SettingsError
from services.common.telemetry import setup_telemetry
from services.common.validation import check_request

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)


def _async(action: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        action()

    return run


@dataclass
class Runtime:
    """What a service's wiring receives: its settings, its pool, and lifecycle hooks."""

    settings: ServiceSettings
    pool: asyncpg.Pool
    _on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)  # every periodic job registered, by `every`
    impairments: set[str] = field(default_factory=set)  # what is lost now (see `impaired`)
    _health_changed: Callable[[], Awaitable[None]] | None = None  # set by the host
    _listener: Listener | None = None

    def on_start(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run after migrations, before the service reports SERVING."""
        self._on_start.append(hook)

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run after the server stopped, before the pool closes (reverse order)."""
        self._on_stop.append(hook)

    def every(self, job: Job) -> None:
        """Run `job` periodically once serving (see `periodic.py`), and once at start when
        `job.at_start`; cancelled on stop."""
        self.jobs.append(job)
        if job.at_start:

            async def first_pass() -> None:
                await periodic.run_once(job, self.pool)

            self.on_start(first_pass)
        self.spawn(job.name, lambda: periodic.run_forever(job, self.pool))

    def listener(self) -> Listener:
        """The process's one LISTEN connection (`listen.py`): opened at start, kept open,
        and NOT_SERVING while it is lost. Register channels before the service starts."""
        if self._listener is None:
            name = f"points-{self.settings.service}-listen"
            self._listener = Listener(self.settings.direct_database_url, name, self.impaired)
            self.on_start(self._listener.start)
            self.on_stop(self._listener.stop)
        return self._listener

    def wake_on(self, channel: str) -> asyncio.Event:
        """An event set by every notification on `channel`, and when the listener is back
        after a loss (notifications in the gap are lost): a periodic job's `wake`."""
        wake = asyncio.Event()
        listener = self.listener()
        listener.listen(channel, lambda _payload: wake.set())
        listener.on_reconnect(wake.set)
        return wake

    async def impaired(self, what: str, lost: bool) -> None:
        """Something the service needs (`what`, e.g. its LISTEN connection) is lost, or back:
        health says NOT_SERVING while anything is lost, SERVING again when all is back."""
        if lost:
            self.impairments.add(what)
        else:
            self.impairments.discard(what)
        if self._health_changed is not None:
            await self._health_changed()

    def sample(self, gauges: SampledGauges) -> None:
        """Report `gauges`, sampled every METRICS_SAMPLE_SECONDS once serving."""
        gauges.start()
        self.on_stop(_async(gauges.stop))
        self.every(Job("metrics-sample", self.settings.metrics_sample_seconds, gauges.refresh))

    def spawn(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a background task (listeners, loops) once serving; cancelled on stop. If it ever
        ends on its own, the service reports NOT_SERVING: something it needs stopped."""

        async def start() -> None:
            self._tasks.append(asyncio.create_task(factory(), name=name))

        self.on_start(start)


Register = Callable[[grpc.aio.Server, Runtime], Awaitable[None]]


@dataclass(frozen=True)
class ServiceSpec:
    """A service as the chassis sees it; `server.py` of each service builds one of these."""

    name: str  # also its schema, env prefix and ErrorInfo domain
    service_names: tuple[str, ...]  # fully-qualified gRPC services, for health and reflection
    register: Register
    migrations_dir: Path | None = None


def replica_name(service: str) -> str:
    """How this process names its database sessions (pg_stat_activity.application_name): the
    service, the host (a pod's name) and the process, so an operator can tell which replica
    holds a lock or a slow query. PostgreSQL keeps 63 bytes."""
    return f"points-{service} {socket.gethostname()} {os.getpid()}"[:63]


class ServiceHost:
    """One running service. Used by `run()` in production and directly by tests."""

    def __init__(self, spec: ServiceSpec, settings: ServiceSettings) -> None:
        self.spec = spec
        self.settings = settings
        self.health = health.aio.HealthServicer()
        self.port = 0
        self._ready = False
        self._server: grpc.aio.Server | None = None
        self._runtime: Runtime | None = None
        self._not_serving: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = False
        self._task_died = False

    @property
    def ready(self) -> bool:
        return self._ready

    def job(self, name: str) -> Job:
        """The background job named `name` (its passes can be waited on)."""
        assert self._runtime is not None, "not started"
        [found] = [j for j in self._runtime.jobs if j.name == name]
        return found

    async def start(self) -> int:
        settings = self.settings
        pool = await create_pool(
            settings.database_url,
            schema=self.spec.name,
            application_name=replica_name(self.spec.name),
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            mode=settings.pool_mode,
        )
        runtime = self._runtime = Runtime(settings, pool)
        runtime._health_changed = self._report_health
        runtime.on_stop(_async(observe_pool(pool, self.spec.name)))
        server = self._server = grpc.aio.server(
            interceptors=[
                CallMetrics(),  # outermost: it sees the status the error interceptor gave
                ErrorInterceptor(self.spec.name, lambda: self._ready, check_request),
            ],
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_connection_age_ms", int(settings.max_connection_age_seconds * 1000)),
            ],
        )
        await self.spec.register(server, runtime)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = (*self.spec.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
        for name in ("", *self.spec.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.port = server.add_insecure_port(f"{settings.host}:{settings.port}")
        await server.start()

        if self.spec.migrations_dir is not None:
            migrations = load_migrations(self.spec.migrations_dir)
            if settings.migrate_on_start:
                # One trace for the start-up check, not one per statement.
                with _tracer.start_as_current_span(f"{self.spec.name}.migrate"):
                    # Direct: the migrations' lock is held across statements (a session's).
                    conn = await asyncpg.connect(settings.direct_database_url)
                    try:
                        applied = await migrate(conn, self.spec.name, migrations)
                    finally:
                        await conn.close()
                log.info("migrations checked", extra={"applied": applied})
            else:
                await self._wait_for_migrations(pool, migrations)
        for hook in runtime._on_start:
            await hook()
        for task in runtime._tasks:
            task.add_done_callback(self._task_ended)
        self._ready = True
        await self._report_health()
        log.info(
            "serving", extra={"service": self.spec.name, "address": f"{settings.host}:{self.port}"}
        )
        return self.port

    async def _wait_for_migrations(self, pool: asyncpg.Pool, migrations: list[Migration]) -> None:
        """MIGRATE_ON_START=false: a deploy step migrates (`points migrate up`, the Kubernetes
        Job); until it has, this replica reports NOT_SERVING and checks again every 2 s."""
        while True:
            async with pool.acquire() as conn:
                states = await status(conn, self.spec.name, migrations)
            changed = [s.migration.version for s in states if s.changed]
            if changed:
                raise MigrationError(f"applied migrations changed since: {changed}")
            waiting = [s.migration.version for s in states if s.applied_at is None]
            if not waiting:
                return
            log.warning("waiting for migrations to be applied", extra={"pending": waiting})
            await asyncio.sleep(2.0)

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stopping:
            return
        log.error(
            "background task ended; reporting NOT_SERVING",
            extra={"task": task.get_name(), "error": repr(task.exception())},
        )
        self._task_died = True
        self._not_serving = asyncio.create_task(self._report_health())

    async def _report_health(self) -> None:
        """SERVING when started, not stopping, no background task died and nothing the service
        needs is lost (`Runtime.impaired`); NOT_SERVING otherwise."""
        impaired = self._runtime is not None and bool(self._runtime.impairments)
        serving = self._ready and not self._stopping and not self._task_died and not impaired
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.spec.service_names):
            await self.health.set(name, status)

    async def stop(self) -> None:
        """Drain and stop; safe to call once the host started (or failed half-way), and again."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping = True
        await self.health.enter_graceful_shutdown()
        if self._ready and self.settings.drain_seconds > 0:
            await asyncio.sleep(self.settings.drain_seconds)
        if self._server is not None:
            await self._server.stop(self.settings.grace_seconds)
        self._ready = False
        runtime = self._runtime
        if runtime is not None:
            for task in runtime._tasks:
                task.cancel()
            # A task that died already reported why (see `_task_ended`).
            await asyncio.gather(*runtime._tasks, return_exceptions=True)
            for hook in reversed(runtime._on_stop):
                await hook()
            await runtime.pool.close()
        log.info("stopped", extra={"service": self.spec.name})


async def _serve_until_signal(host: ServiceHost) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await host.start()
        await stop.wait()
        log.info("shutting down", extra={"grace_seconds": host.settings.grace_seconds})
    finally:
        await host.stop()


def run(spec: ServiceSpec) -> None:
    """Entry point of a service process: exit 2 on bad configuration, 0 after a clean stop."""
    try:
        settings = ServiceSettings.from_env(spec.name)
    except SettingsError as exc:
        print(f"{spec.name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(spec.name, settings.telemetry.log_level)
    telemetry = setup_telemetry(settings.telemetry)
    try:
        # uvloop: the same asyncio, about a fifth less CPU per RPC (bench/ledger_throughput.py).
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve_until_signal(ServiceHost(spec, settings)))
    except SettingsError as exc:  # service-specific settings, read while wiring
        print(f"{spec.name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        telemetry.shutdown()
