"""The chassis as a real process: health, reflection, draining and SIGTERM."""

import asyncio
import signal
import subprocess
import sys

import grpc
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support import echo_service
from tests.support.hosts import ROOT, free_port, health_status, spawn, wait_serving


async def _list_services(address: str) -> set[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for reply in stub.ServerReflectionInfo(iter([request])):
            return {s.name for s in reply.list_services_response.service}
    raise AssertionError("no reflection reply")


async def test_serving_reflection_and_graceful_sigterm(database_url: str) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    process = spawn(
        "tests.support.echo_service",
        {
            "DATABASE_URL": database_url,
            "ECHO_PORT": str(port),
            "DRAIN_SECONDS": "1",
            "GRACE_PERIOD_SECONDS": "5",
        },
    )
    try:
        await wait_serving(address)
        assert await health_status(address, echo_service.SERVICE) == (
            health_pb2.HealthCheckResponse.SERVING
        )
        assert await _list_services(address) >= {
            echo_service.SERVICE,
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        }
        async with grpc.aio.insecure_channel(address) as channel:
            in_flight = asyncio.ensure_future(echo_service.call(channel, "Sleep")(b"1.5"))
            await asyncio.sleep(0.3)  # the call is now running in the server
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            # Draining: still reachable, but telling load balancers to go away.
            assert await health_status(address) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert await in_flight == b"slept"  # the in-flight call completed
        assert await asyncio.to_thread(process.wait, 10) == 0
        assert await health_status(address) is None  # nothing listens any more
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_bad_setting_fails_start_naming_the_variable(database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.echo_service"],
        cwd=ROOT,
        env={"DATABASE_URL": database_url, "ECHO_PORT": "not-a-port", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "ECHO_PORT must be an integer" in result.stderr
