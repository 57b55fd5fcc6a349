"""GET /v1/me/wallet through the gateway with every backend up, each service its own process
(`gateway_wallet`), against GET /healthz on the same gateway (the HTTP stack alone).

Goal (issue 13): >= 0.25 of /healthz x50. Both tracing profiles; CPU and round trips per
wallet. The fan-out is concurrent: with one backend slowed by 20 ms the wallet's latency grows
by about 20 ms, not by the sum of the calls. Also reports each process's resident memory.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import subprocess
import time

import grpc
import httpx

from bench.support import (
    CHECK,
    OPS,
    Measured,
    Rate,
    SpanSink,
    closed_loop,
    cpu_ms_per_call,
    p,
    profiles,
    report,
    report_cpu,
    round_trips,
    rss_mb,
    scratch_database,
    span_sink,
    suite,
)
from gateway.auth import mint
from gateway.settings import DEV_SECRET, AuthSettings
from loyalty.ledger.v1 import ledger_pb2 as lpb
from loyalty.ledger.v1 import ledger_pb2_grpc
from tests.support.hosts import free_port

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
CLIENTS = 50
DELAY = 0.020


async def slow_proxy(port: int, target: str) -> grpc.aio.Server:
    """A gRPC proxy that forwards any unary call to `target` after DELAY seconds."""
    channel = grpc.aio.insecure_channel(target)

    class Forward(grpc.GenericRpcHandler):
        def service(
            self, details: grpc.HandlerCallDetails
        ) -> grpc.RpcMethodHandler[bytes, bytes] | None:
            method: str = details.method
            call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)

            async def forward(request: bytes, context: object) -> bytes:
                await asyncio.sleep(DELAY)
                reply: bytes = await call(request, timeout=5)
                return reply

            return grpc.unary_unary_rpc_method_handler(forward)

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((Forward(),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server


def wrk(url: str, headers: dict[str, str]) -> tuple[float, float, float]:
    """Requests/s, p50 and p99 (ms) from wrk, a C load generator that leaves the CPU to the
    services better than a Python client would. Fails on any non-2xx answer."""
    # wrk counts whole seconds and refuses 0 (a short BENCH_SECONDS, as the tests give).
    command = ["wrk", "-t2", f"-c{CLIENTS}", f"-d{max(1, round(SECONDS))}s", "--latency", url]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    assert "Non-2xx" not in out, out

    def ms(label: str) -> float:
        match = re.search(rf"{label}\s+([0-9.]+)(us|ms|s)", out)
        assert match, out
        return float(match[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]

    rate = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    assert rate, out
    return float(rate[1]), ms("50%"), ms("99%")


async def latency_ms(http: httpx.AsyncClient, headers: dict[str, str], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        assert (await http.get("/v1/me/wallet", headers=headers)).status_code == 200
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


async def measure(sink: SpanSink, url: str, headers: dict[str, str], profile: str) -> None:
    names = ("ledger", "rules", "mall", "gateway")
    # Capacity, not degradation, is measured: with 50 callers on two cores a backend call can
    # queue past the default 1 s deadline, and a degraded wallet (a part left empty) is cheap.
    env = {**sink.env(profile), "BACKEND_TIMEOUT_SECONDS": "5"}
    async with suite(url, names, env) as running:
        base = f"http://127.0.0.1:{running.ports['gateway']}"
        # Idle connections are dropped before uvicorn's 5 s keep-alive would close them under
        # a request (a ReadError on a connection the server just closed).
        limits = httpx.Limits(max_connections=CLIENTS, keepalive_expiry=2)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as http:

            async def health(client: int, i: int) -> None:
                assert (await http.get("/healthz")).status_code == 200

            async def wallet(client: int, i: int) -> None:
                reply = await http.get("/v1/me/wallet", headers=headers)
                assert reply.status_code == 200 and not reply.json()["degraded"], reply.text

            await wallet(0, 0)  # one call opens every channel and pool before the crowd
            await closed_loop(CLIENTS, 1, wallet)
            if CHECK:
                report_cpu(
                    "gateway_wallet",
                    await cpu_ms_per_call(running.cpu_seconds, CLIENTS, OPS, wallet),
                )
                return
            if shutil.which("wrk"):
                floor = Rate(
                    "GET /healthz x50 (wrk)", *await asyncio.to_thread(wrk, f"{base}/healthz", {})
                )
                cpu = running.cpu_seconds()
                path = Rate(
                    "GET /v1/me/wallet x50 (wrk)",
                    *await asyncio.to_thread(wrk, f"{base}/v1/me/wallet", headers),
                )
            else:  # fall back to a Python client (slower: it competes for the CPU)
                count, latencies = await closed_loop(CLIENTS, SECONDS, health)
                floor = Rate(
                    "GET /healthz x50 (httpx)",
                    count / SECONDS,
                    p(latencies, 0.5),
                    p(latencies, 0.99),
                )
                cpu = running.cpu_seconds()
                count, latencies = await closed_loop(CLIENTS, SECONDS, wallet)
                path = Rate(
                    "GET /v1/me/wallet x50 (httpx)",
                    count / SECONDS,
                    p(latencies, 0.5),
                    p(latencies, 0.99),
                )
            measured = Measured(
                floor, path, running.cpu_ms_per(cpu, int(path.per_second * SECONDS))
            )
            measured.round_trips = await round_trips(sink, profile, wallet, 8)
        memory = {n: rss_mb(running.pids[n]) for n in names}
    report("gateway_wallet", profile, measured)
    print("  RSS after load: " + ", ".join(f"{n} {mb:.0f} MB" for n, mb in memory.items()))


async def fan_out(url: str, headers: dict[str, str]) -> None:
    """The wallet's latency alone, then with every call to rules slowed by DELAY."""
    names = ("ledger", "rules", "mall", "gateway")
    async with suite(url, names) as running:
        base = f"http://127.0.0.1:{running.ports['gateway']}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            await latency_ms(http, headers, 5)
            normal = await latency_ms(http, headers, 50)
    proxy_port = free_port()
    # The gateway reaches rules through a proxy adding DELAY to every call.
    async with suite(url, names, {"RULES_ADDR": f"127.0.0.1:{proxy_port}"}) as running:
        proxy = await slow_proxy(proxy_port, running.address("rules"))
        base = f"http://127.0.0.1:{running.ports['gateway']}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            await latency_ms(http, headers, 5)
            slowed = await latency_ms(http, headers, 50)
        await proxy.stop(None)
    print(
        f"one client: wallet p50 {normal:.1f} ms; with rules slowed by {DELAY * 1000:.0f} ms:"
        f" {slowed:.1f} ms (+{slowed - normal:.1f} ms; the backend calls run in parallel)"
    )


async def main() -> None:
    token = mint(AuthSettings("HS256", DEV_SECRET, None, None), "bench-user")
    headers = {"Authorization": f"Bearer {token}"}
    async with span_sink() as sink, scratch_database("bench_gateway") as url:
        async with (
            suite(url, ("ledger",)) as running,
            grpc.aio.insecure_channel(running.address("ledger")) as channel,
        ):
            await ledger_pb2_grpc.LedgerServiceStub(channel).Credit(
                lpb.CreditRequest(
                    request_id="seed", user_id="bench-user", amount=100, source="bench"
                )
            )
        for profile in profiles():
            await measure(sink, url, headers, profile)
        if not CHECK:
            await fan_out(url, headers)


if __name__ == "__main__":
    asyncio.run(main())
