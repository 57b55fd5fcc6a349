"""The whole suite as separate processes (ledger, rules, mall, gateway) on free loopback
ports, for tests of what crosses processes (traces, metrics)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import httpx

from loyalty.mall.v1 import mall_pb2 as mpb
from loyalty.mall.v1 import mall_pb2_grpc
from loyalty.rules.v1 import rules_pb2_grpc
from tests.support.hosts import free_port, spawn, wait_serving
from tests.support.rules_calls import define_program

SERVICES = ("ledger", "rules", "mall", "webhooks")
MODULES = {
    "ledger": "services.ledger.server",
    "rules": "services.rules.server",
    "mall": "services.mall.server",
    "webhooks": "services.webhooks.server",
    "gateway": "gateway.main",
}


@dataclass
class Suite:
    ports: Mapping[str, int]
    env: Mapping[str, str]
    processes: dict[str, subprocess.Popen[bytes]]

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    async def kill_and_restart(self, name: str) -> None:
        """SIGKILL a service (nothing flushed, nothing released) and start it again."""
        self.processes[name].send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.processes[name].wait, 10)
        self.processes[name] = spawn(MODULES[name], self.env)
        await wait_serving(self.address(name))

    @property
    def gateway_url(self) -> str:
        return f"http://{self.address('gateway')}"


@asynccontextmanager
async def running_suite(database_url: str, env: Mapping[str, str]) -> AsyncIterator[Suite]:
    """Start every process, wait until each serves; SIGTERM all on exit (a clean stop
    flushes every exporter) and wait for them."""
    ports = {name: free_port() for name in MODULES}
    full_env = {
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()},
        **{f"{name.upper()}_ADDR": f"127.0.0.1:{port}" for name, port in ports.items()},
        **env,
    }
    suite = Suite(ports, full_env, {})
    try:
        # The services one by one: each applies its migrations on start.
        for name in SERVICES:
            suite.processes[name] = spawn(MODULES[name], full_env)
            await wait_serving(f"127.0.0.1:{ports[name]}")
        suite.processes["gateway"] = spawn(MODULES["gateway"], full_env)
        async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=10) as http:
            for _ in range(100):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        yield suite
    finally:
        for process in suite.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in suite.processes.values():
            await asyncio.to_thread(process.wait, 15)


async def define_program_and_sticker(suite: Suite, points_price: int) -> None:
    """The standard program (check-in worth 5) and a sticker fulfilled on the spot."""
    async with grpc.aio.insecure_channel(suite.address("rules")) as channel:
        await define_program(rules_pb2_grpc.RulesServiceStub(channel))
    async with grpc.aio.insecure_channel(suite.address("mall")) as channel:
        await mall_pb2_grpc.MallServiceStub(channel).UpsertItem(
            mpb.UpsertItemRequest(
                item=mpb.Item(
                    item_id="sticker",
                    type=mpb.ITEM_TYPE_VIRTUAL,
                    title="Sticker",
                    points_price=points_price,
                    unlimited_stock=True,
                    enabled=True,
                )
            )
        )
