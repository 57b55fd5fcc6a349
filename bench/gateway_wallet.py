"""GET /v1/me/wallet through the gateway with every backend up, each service its own process.

Targets (issue 7): >= 800 requests/s and p99 <= 30 ms at 50 concurrent clients; the fan-out is
concurrent: with one backend slowed by 20 ms the wallet's latency grows by about 20 ms, not by
the sum of the calls. Also reports each process's resident memory after the load.
Baseline in the same run: GET /healthz on the same gateway (HTTP stack, no backend calls).
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

from bench.support import closed_loop, p, rss_mb, scratch_database, suite
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
    command = ["wrk", "-t2", f"-c{CLIENTS}", f"-d{int(SECONDS)}s", "--latency", url]
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


async def main() -> None:
    token = mint(AuthSettings("HS256", DEV_SECRET, None, None), "bench-user")
    headers = {"Authorization": f"Bearer {token}"}
    async with scratch_database("bench_gateway") as url:
        names = ("ledger", "rules", "mall", "gateway")
        async with suite(url, names) as running:
            ports = running.ports
            async with grpc.aio.insecure_channel(running.address("ledger")) as channel:
                await ledger_pb2_grpc.LedgerServiceStub(channel).Credit(
                    lpb.CreditRequest(
                        request_id="seed", user_id="bench-user", amount=100, source="bench"
                    )
                )
            limits = httpx.Limits(max_connections=CLIENTS)
            base = f"http://127.0.0.1:{ports['gateway']}"
            async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as http:

                async def health(client: int, i: int) -> None:
                    assert (await http.get("/healthz")).status_code == 200

                async def wallet(client: int, i: int) -> None:
                    reply = await http.get("/v1/me/wallet", headers=headers)
                    assert reply.status_code == 200 and not reply.json()["degraded"]

                await closed_loop(CLIENTS, 1, wallet)
                if shutil.which("wrk"):
                    h_rate, _, h_p99 = await asyncio.to_thread(wrk, f"{base}/healthz", {})
                    cpu = running.cpu_seconds()
                    rate, p50, p99 = await asyncio.to_thread(wrk, f"{base}/v1/me/wallet", headers)
                    tool = "wrk"
                else:  # fall back to a Python client (slower: it competes for the CPU)
                    h_count, h_lat = await closed_loop(CLIENTS, SECONDS, health)
                    cpu = running.cpu_seconds()
                    count, lat = await closed_loop(CLIENTS, SECONDS, wallet)
                    h_rate, h_p99 = h_count / SECONDS, p(h_lat, 0.99)
                    rate, p50, p99 = count / SECONDS, p(lat, 0.5), p(lat, 0.99)
                    tool = "httpx"
                cpu_per_wallet = running.cpu_ms_per(cpu, int(rate * SECONDS))
                normal = await latency_ms(http, headers, 50)
            memory = {n: rss_mb(running.pids[n]) for n in ("gateway", "ledger", "rules", "mall")}
        proxy_port = free_port()
        # The proxy forwards to where the next suite's rules will listen: start it lazily.
        # The gateway reaches rules through a proxy adding DELAY to every call.
        async with suite(url, names, {"RULES_ADDR": f"127.0.0.1:{proxy_port}"}) as running:
            ports = running.ports
            proxy = await slow_proxy(proxy_port, running.address("rules"))
            base = f"http://127.0.0.1:{ports['gateway']}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                await latency_ms(http, headers, 5)
                slowed = await latency_ms(http, headers, 50)
            await proxy.stop(None)
    print(f"load from {tool}, {CLIENTS} connections, {SECONDS:.0f} s each")
    print(f"GET /healthz      : {h_rate:7.0f} rps  p99 {h_p99:.1f} ms  (baseline: HTTP stack)")
    print(
        f"GET /v1/me/wallet : {rate:7.0f} rps  p50 {p50:.1f} ms  p99 {p99:.1f} ms"
        f"  ({rate / h_rate:.2f} of baseline)"
    )
    print(
        f"one client: wallet p50 {normal:.1f} ms; with rules slowed by {DELAY * 1000:.0f} ms:"
        f" {slowed:.1f} ms (+{slowed - normal:.1f} ms; 6 backend calls in parallel)"
    )
    print(f"CPU ms per wallet : {cpu_per_wallet}")
    print("RSS after load: " + ", ".join(f"{n} {mb:.0f} MB" for n, mb in memory.items()))


if __name__ == "__main__":
    asyncio.run(main())
