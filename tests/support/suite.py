"""The whole suite as separate processes (ledger, rules, mall, webhooks, gateway) on free
loopback ports, one or more replicas of each, for tests of what crosses processes (traces,
metrics, replicas)."""

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
    ports: Mapping[str, list[int]]  # per process name, one port per replica
    env: Mapping[str, str]
    processes: dict[str, list[subprocess.Popen[bytes]]]
    metrics_ports: Mapping[str, list[int]]  # each replica's /metrics (empty unless asked)

    def address(self, name: str, replica: int = 0) -> str:
        return f"127.0.0.1:{self.ports[name][replica]}"

    def target(self, name: str) -> str:
        """Every replica of `name`, as the services are told (`<NAME>_ADDR`)."""
        return self.env[f"{name.upper()}_ADDR"]

    def _env_of(self, name: str, replica: int) -> dict[str, str]:
        own = {f"{name.upper()}_PORT": str(self.ports[name][replica])}
        if self.metrics_ports:
            own[f"{name.upper()}_METRICS_PORT"] = str(self.metrics_ports[name][replica])
        return {**self.env, **own}

    def _spawn(self, name: str, replica: int) -> subprocess.Popen[bytes]:
        return spawn(MODULES[name], self._env_of(name, replica))

    async def kill(self, name: str, replica: int = 0) -> None:
        """SIGKILL one replica: nothing flushed, nothing released but what the kernel closes."""
        process = self.processes[name][replica]
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait, 10)

    async def restart(self, name: str, replica: int = 0) -> None:
        self.processes[name][replica] = self._spawn(name, replica)
        await wait_serving(self.address(name, replica))

    async def kill_and_restart(self, name: str, replica: int = 0) -> None:
        await self.kill(name, replica)
        await self.restart(name, replica)

    def gateway_url(self, replica: int = 0) -> str:
        return f"http://{self.address('gateway', replica)}"


@asynccontextmanager
async def running_suite(
    database_url: str, env: Mapping[str, str], replicas: int = 1, metrics: bool = False
) -> AsyncIterator[Suite]:
    """Start every process (`replicas` of each, callers balancing over them), wait until each
    serves; SIGTERM all on exit (a clean stop flushes every exporter) and wait for them."""
    ports = {name: [free_port() for _ in range(replicas)] for name in MODULES}
    listed = {name: ",".join(f"127.0.0.1:{p}" for p in ports[name]) for name in MODULES}
    full_env = {
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        **{f"{name.upper()}_ADDR": listed[name] for name in MODULES},
        **env,
    }
    metrics_ports = (
        {name: [free_port() for _ in range(replicas)] for name in MODULES} if metrics else {}
    )
    suite = Suite(ports, full_env, {name: [] for name in MODULES}, metrics_ports)
    try:
        # Service by service (rules and mall call the ledger at start); a service's replicas
        # start together and take turns at its migrations.
        for name in (*SERVICES, "gateway"):
            suite.processes[name] = [suite._spawn(name, n) for n in range(replicas)]
        for name in SERVICES:
            for n in range(replicas):
                await wait_serving(suite.address(name, n), within=20)
        async with httpx.AsyncClient(timeout=10) as http:
            for n in range(replicas):
                for _ in range(100):
                    try:
                        if (await http.get(f"{suite.gateway_url(n)}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
        yield suite
    finally:
        every = [p for processes in suite.processes.values() for p in processes]
        for process in every:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in every:
            await asyncio.to_thread(process.wait, 15)


async def define_program_and_sticker(
    suite: Suite, points_price: int, stock: int | None = None
) -> None:
    """The standard program (check-in worth 5) and a sticker fulfilled on the spot (`stock`
    of them; None: unlimited)."""
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
                    unlimited_stock=stock is None,
                    stock=stock or 0,
                    enabled=True,
                )
            )
        )
