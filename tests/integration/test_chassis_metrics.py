"""The chassis measures every call of every handler kind (rate, errors, duration) and the
connection pool, and its idle background loops export no traces."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common import periodic
from services.common.metrics import SERVER_ERRORS as SERVER_ERROR_CODES
from services.common.periodic import Job
from tests.support import echo_service
from tests.support.hosts import running
from tests.support.metrics import collect, total

DURATION = "rpc.server.call.duration"
SERVER_ERRORS = {code.name for code in SERVER_ERROR_CODES}


def _calls(reader: InMemoryMetricReader, method: str, code: str) -> float:
    return total(
        collect(reader).get(DURATION, []),
        {"rpc.method": f"{echo_service.SERVICE}/{method}", "rpc.response.status_code": code},
    )


async def _parts(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_every_handler_kind_is_counted_with_its_status(
    database_url: str, metric_reader: InMemoryMetricReader
) -> None:
    async with running(echo_service.SPEC, database_url) as host:
        kinds = ("Echo", "Repeat", "Join", "Chat")
        before = {m: _calls(metric_reader, m, "OK") for m in kinds}
        failed_before = _calls(metric_reader, "Fail", "INVALID_ARGUMENT")
        internal_before = _calls(metric_reader, "Fail", "INTERNAL")
        codec = {"request_serializer": bytes, "response_deserializer": bytes}
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            path = f"/{echo_service.SERVICE}/"
            assert await channel.unary_unary(path + "Echo", **codec)(b"hi") == b"hi"
            got = [r async for r in channel.unary_stream(path + "Repeat", **codec)(b"3")]
            assert got == [b"3"] * 3
            assert await channel.stream_unary(path + "Join", **codec)(_parts(b"a", b"b")) == b"ab"
            chat = channel.stream_stream(path + "Chat", **codec)(_parts(b"x", b"y"))
            assert [r async for r in chat] == [b"X", b"Y"]
            for kind in ("invalid", "boom"):
                try:
                    await echo_service.call(channel, "Fail")(kind.encode())
                except grpc.aio.AioRpcError:
                    pass
        after = collect(metric_reader)
    for method in kinds:
        assert _calls(metric_reader, method, "OK") == before[method] + 1, method
    assert _calls(metric_reader, "Fail", "INVALID_ARGUMENT") == failed_before + 1
    assert _calls(metric_reader, "Fail", "INTERNAL") == internal_before + 1
    # Only the server's failure is an error of the service (semantic conventions for gRPC).
    failed = {
        (p.attributes["rpc.response.status_code"], p.attributes.get("error.type"))
        for p in after[DURATION]
        if str(p.attributes["rpc.method"]).endswith("/Fail")
    }
    assert {("INVALID_ARGUMENT", None), ("INTERNAL", "INTERNAL")} <= failed
    assert all(error == (code if code in SERVER_ERRORS else None) for code, error in failed)
    assert all(p.attributes["rpc.system.name"] == "grpc" for p in after[DURATION])
    pool = [
        p
        for p in after["db.client.connection.count"]
        if p.attributes["db.client.connection.pool.name"] == "echo"
    ]
    assert {p.attributes["db.client.connection.state"] for p in pool} == {"used", "idle"}
    assert sum(p.value for p in pool) >= 1


async def test_an_idle_pass_exports_nothing_and_work_is_a_trace_of_its_own(
    database_url: str, spans: InMemorySpanExporter
) -> None:
    async with running(echo_service.SPEC, database_url) as host:
        pool = host._runtime.pool if host._runtime else None
        assert pool is not None

        async def idle() -> None:
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT count(*) FROM notes")

        async def busy() -> None:
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT count(*) FROM notes")
            with periodic.traced_work("echo.work", attributes={"points.items": 1}):
                async with pool.acquire() as conn:
                    await conn.execute("INSERT INTO notes (body) VALUES ('from a job')")

        spans.clear()
        await periodic.run_once(Job("idle", 1.0, idle), pool)
        await periodic.run_once(Job("locked", 1.0, idle, once_across_replicas=True), pool)
        assert spans.get_finished_spans() == ()
        await periodic.run_once(Job("busy", 1.0, busy), pool)
    finished = spans.get_finished_spans()
    work = [s for s in finished if s.name == "echo.work"]
    assert len(work) == 1 and work[0].parent is None
    insert = [s for s in finished if s is not work[0]]
    assert len(insert) == 1 and insert[0].parent is not None
    assert insert[0].parent.span_id == work[0].context.span_id
