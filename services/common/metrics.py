"""Metrics every process shares: RED of each gRPC method, the connection pool, and gauges of
database state sampled by a periodic job.

Names follow the OpenTelemetry semantic conventions where one exists
(`rpc.server.call.duration`, `db.client.connection.count`); the suite's own metrics are under
`points.`. The MeterProvider itself is built in `telemetry.py`, with the tracer provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from services.common.db import Conn

METER_NAME = "points"
# Seconds, as the semantic conventions advise for request durations.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# Codes that mean the server failed (semantic conventions for gRPC); the others are answers
# to the caller's request (INVALID_ARGUMENT, NOT_FOUND, ...) and not errors of the service.
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

Attributes = Mapping[str, str]
Readings = list[tuple[float, Attributes]]


def meter() -> Meter:
    """The suite's meter (the global provider's; a no-op until one is installed)."""
    return metrics.get_meter(METER_NAME)


Behavior = Callable[..., Any]


class CallMetrics(grpc.aio.ServerInterceptor):
    """`rpc.server.call.duration` for every call of every handler kind, with its method and
    status code: rate, errors and duration (RED) from one histogram."""

    def __init__(self) -> None:
        # The handler wrapped for each method, built on its first call: grpc.aio asks every
        # interceptor on every call, and the inner ones (errors, request checks) answer the
        # same for a method each time, so later calls skip them and the rebuilding.
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        self._duration = meter().create_histogram(
            "rpc.server.call.duration",
            unit="s",
            description="Duration of inbound RPCs, to the last message for streams",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    def _record(
        self,
        method: str,
        started: float,
        context: grpc.aio.ServicerContext[Any, Any],
        ended: grpc.StatusCode,
    ) -> None:
        """`ended`: how the handler ended (OK, CANCELLED, or UNKNOWN when it raised); a status
        the handler or the error interceptor set takes precedence."""
        code = context.code()
        if not isinstance(code, grpc.StatusCode):
            code = ended
        attributes = {
            "rpc.system.name": "grpc",
            "rpc.method": method,
            "rpc.response.status_code": code.name,
        }
        if code in SERVER_ERRORS:
            attributes["error.type"] = code.name
        self._duration.record(time.perf_counter() - started, attributes)

    def _unary_response(self, method: str, behavior: Behavior) -> Behavior:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started, ended = time.perf_counter(), grpc.StatusCode.UNKNOWN
            try:
                response = await behavior(request, context)
                ended = grpc.StatusCode.OK
                return response
            except asyncio.CancelledError:  # the caller went away (or its deadline passed)
                ended = grpc.StatusCode.CANCELLED
                raise
            finally:
                self._record(method, started, context, ended)

        return wrapped

    def _stream_response(self, method: str, behavior: Behavior) -> Behavior:
        async def wrapped(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            started, ended = time.perf_counter(), grpc.StatusCode.UNKNOWN
            try:
                result = behavior(request, context)
                if hasattr(result, "__aiter__"):
                    async for response in result:
                        yield response
                else:  # a handler that writes with context.write()
                    await result
                ended = grpc.StatusCode.OK
            except (asyncio.CancelledError, GeneratorExit):  # the caller closed the stream
                ended = grpc.StatusCode.CANCELLED
                raise
            finally:
                self._record(method, started, context, ended)

        return wrapped

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        path = handler_call_details.method
        known = self._wrapped.get(path)
        if known is not None:
            return known
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown methods are not kept: their names are the caller's
            return None
        self._wrapped[path] = wrapped = self._wrap(path.lstrip("/"), handler)
        return wrapped

    def _wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        codecs: dict[str, Any] = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary_response(method, handler.unary_unary), **codecs
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary_response(method, handler.stream_unary), **codecs
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._stream_response(method, handler.unary_stream), **codecs
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._stream_response(method, handler.stream_stream), **codecs
            )
        return handler


@dataclass(frozen=True)
class Gauge:
    name: str
    unit: str
    description: str
    up_down: bool = False  # an amount in use (connections) rather than a level


# Each observable instrument is created once per process; what it reports comes from every
# source registered for it (one per running service host: tests run several in a process).
_sources: dict[str, list[Callable[[], Readings]]] = {}


def observe(gauge: Gauge, source: Callable[[], Readings]) -> Callable[[], None]:
    """Report `source()` under `gauge` at each collection; returns what unregisters it."""
    if gauge.name not in _sources:
        _sources[gauge.name] = []
        create = (
            meter().create_observable_up_down_counter
            if gauge.up_down
            else meter().create_observable_gauge
        )
        create(gauge.name, [_callback(gauge.name)], unit=gauge.unit, description=gauge.description)
    _sources[gauge.name].append(source)
    return lambda: _sources[gauge.name].remove(source)


def _callback(name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def collect(_: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(value, dict(attributes))
            for source in _sources[name]
            for value, attributes in source()
        ]

    return collect


POOL_CONNECTIONS = Gauge("db.client.connection.count", "{connection}", "Connections", True)
POOL_MAX = Gauge("db.client.connection.max", "{connection}", "The pool's size cap", True)


def observe_pool(pool: asyncpg.Pool, name: str) -> Callable[[], None]:
    """`db.client.connection.count` (used and idle) and `.max` of a service's pool."""
    base = {"db.client.connection.pool.name": name}

    def count() -> Readings:
        size, idle = pool.get_size(), pool.get_idle_size()
        return [
            (size - idle, {**base, "db.client.connection.state": "used"}),
            (idle, {**base, "db.client.connection.state": "idle"}),
        ]

    stops = [
        observe(POOL_CONNECTIONS, count),
        observe(POOL_MAX, lambda: [(pool.get_max_size(), base)]),
    ]

    def stop() -> None:
        for each in stops:
            each()

    return stop


def sampled_row(
    pool: asyncpg.Pool,
    read: Callable[[Conn], Awaitable[asyncpg.Record]],
    columns: Sequence[tuple[Gauge, str]],
) -> SampledGauges:
    """Gauges that are the columns of one row `read` returns (each without attributes)."""

    async def sample() -> Mapping[str, Readings]:
        async with pool.acquire() as conn:
            row = await read(conn)
        return {gauge.name: [(row[column], {})] for gauge, column in columns}

    return SampledGauges([gauge for gauge, _ in columns], sample)


class SampledGauges:
    """Gauges of what the database holds (backlogs, liability, queues).

    An observable instrument's callback is synchronous and cannot query asyncpg, so a periodic
    job (`refresh`) samples them and the callbacks report the last sample. Every replica
    reports the same values: aggregate them with max(), not sum().
    """

    def __init__(
        self, gauges: Sequence[Gauge], sample: Callable[[], Awaitable[Mapping[str, Readings]]]
    ) -> None:
        self._gauges = gauges
        self._sample = sample
        self._latest: dict[str, Readings] = {}
        self._stops: list[Callable[[], None]] = []

    def start(self) -> None:
        self._stops = [observe(g, self._reader(g.name)) for g in self._gauges]

    def _reader(self, name: str) -> Callable[[], Readings]:
        return lambda: self._latest.get(name, [])

    def stop(self) -> None:
        for stop in self._stops:
            stop()

    async def refresh(self) -> None:
        self._latest = dict(await self._sample())
