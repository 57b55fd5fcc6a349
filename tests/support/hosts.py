"""Helpers to run services for tests: in-process hosts and separate processes."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.server import ServiceHost, ServiceSpec
from services.common.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]


# Listening ports for tests come from below the kernel's ephemeral range (32768-60999 by
# default): a port taken from that range can be handed, between our check and the server's
# bind, to some process's outgoing connection (a flake seen with five services starting).
_LISTEN_PORTS = range(20000, 32000)
_given: set[int] = set()  # never hand the same port out twice in one process


def free_port() -> int:
    """A port nothing listens on now, outside the ephemeral range."""
    for _ in range(100):
        port = random.choice(_LISTEN_PORTS)
        if port in _given:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError("no free port found")


@asynccontextmanager
async def running(
    spec: ServiceSpec, database_url: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[ServiceHost]:
    """Start `spec` in this process on a free loopback port; stop it afterwards."""
    settings = ServiceSettings.from_env(
        spec.name,
        {
            "DATABASE_URL": database_url,
            f"{spec.name.upper()}_PORT": "0",
            "GRACE_PERIOD_SECONDS": "1",
            "DB_POOL_MIN": "1",
            **(env or {}),
        },
    )
    host = ServiceHost(spec, settings)
    try:
        await host.start()
        yield host
    finally:
        await host.stop()


async def health_status(address: str, service: str = "") -> int | None:
    """The health status of `service` at `address`, or None when the call fails."""
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1
            )
        except grpc.aio.AioRpcError:
            return None
        return int(reply.status)


async def wait_serving(address: str, within: float = 10.0) -> float:
    """Seconds until `address` reports SERVING; fails after `within` seconds."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if await health_status(address) == health_pb2.HealthCheckResponse.SERVING:
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{address} not SERVING after {within} s")


def spawn(module: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Run `python -m module` from the repository root with `env` added to ours.

    Its output goes to ours, which pytest captures and shows when a test fails.
    """
    return subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env={**os.environ, **env})


@asynccontextmanager
async def serving_gateway(env: Mapping[str, str]) -> AsyncIterator[str]:
    """The gateway app under uvicorn in this process on a free loopback port; yields its URL."""
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    port = int(env.get("GATEWAY_PORT") or free_port())  # a test may need it known beforehand
    settings = GatewaySettings.from_env({**env, "GATEWAY_PORT": str(port)})
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def make_run(env: Mapping[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    """Start `make run`'s supervisor (scripts/run_suite.py) with `env` and read what it prints
    until every service is up or it gives up; the process and those lines."""
    suite = subprocess.Popen(
        [sys.executable, "scripts/run_suite.py"],
        cwd=ROOT,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert suite.stdout is not None
    lines: list[str] = []
    for line in suite.stdout:
        lines.append(line.strip())
        if line.startswith(("all services up", "not healthy", "a service exited")):
            break
    return suite, lines
