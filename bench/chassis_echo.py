"""The chassis' own cost per call (`chassis_echo`): a bare grpc.aio echo, the chassis' health
RPC, and the same echo through every interceptor of the chassis, each in its own process.

Goal (issue 26): the chassis costs at most 1.3x the bare echo in server CPU per call. CPU per
call is counted in the server process alone (the client is this process).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.echo import ECHO
from bench.support import (
    CHECK,
    OPS,
    ROOT,
    cpu_ms_per_call,
    process_cpu_seconds,
    scratch_database,
    span_sink,
    wait_port,
)
from tests.support.hosts import free_port

CLIENTS = 32
CALLS = OPS if CHECK else int(os.environ.get("BENCH_CALLS", "10000"))  # per round
GOAL = 1.3


@asynccontextmanager
async def echo_process(kind: str, env: dict[str, str]) -> AsyncIterator[tuple[int, str]]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.echo",
        kind,
        str(port),
        cwd=ROOT,
        env={**os.environ, **env, "ECHO_PORT": str(port), "LOG_LEVEL": "WARNING"},
    )
    try:
        await wait_port(port, within=30)
        yield process.pid, f"127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()


async def server_cpu_ms(pid: int, address: str, rpc: str) -> float:
    """Server CPU per call of `rpc` ("echo" or "health") from CLIENTS concurrent callers."""
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        echo = channel.unary_unary(
            ECHO,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )

        async def call(client: int, i: int) -> None:
            if rpc == "echo":
                await echo(health_pb2.HealthCheckRequest())
            else:
                await health.Check(health_pb2.HealthCheckRequest())

        for _ in range(300):  # until the server answers (the chassis once it is SERVING)
            try:
                await call(0, 0)
                break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)
        cpu = await cpu_ms_per_call(
            lambda: {"server": process_cpu_seconds(pid)}, CLIENTS, CALLS, call
        )
        return cpu["server"]


ROUNDS = 3


async def main() -> None:
    """The three figures in interleaved rounds, each the median of its rounds: the machine's
    load drifts during a run, and it then weighs on all three alike."""
    found: dict[str, list[float]] = {"bare echo": [], "chassis health": [], "chassis echo": []}
    async with (
        span_sink() as sink,
        scratch_database("bench_echo") as url,
        echo_process("bare", {}) as bare,
        echo_process("chassis", {**sink.env("production"), "DATABASE_URL": url}) as chassis,
    ):
        for _ in range(ROUNDS):
            found["bare echo"].append(await server_cpu_ms(*bare, "echo"))
            found["chassis health"].append(await server_cpu_ms(*chassis, "health"))
            found["chassis echo"].append(await server_cpu_ms(*chassis, "echo"))
    bare_ms, health, echo = (statistics.median(v) for v in found.values())
    print(f"[chassis_echo / production tracing, {ROUNDS} rounds of {CALLS:,} calls x{CLIENTS}]")
    print(f"  server CPU per call: bare echo {bare_ms:.3f} ms, chassis health {health:.3f} ms,")
    print(f"  chassis echo {echo:.3f} ms: {echo / bare_ms:.2f}x bare (goal <= {GOAL}x)")
    print(f"CPU chassis_echo {echo:.3f}")
    print(f"COST chassis_echo {echo / bare_ms:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
