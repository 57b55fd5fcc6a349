"""Shared benchmark plumbing: a scratch database, the services as processes, the two tracing
profiles, a floor measured in the same run on the same processes, CPU per operation per
process (PostgreSQL's included) and round trips per operation counted from the traces."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc

from loyalty.ledger.v1 import ledger_pb2_grpc
from scripts import devdb
from tests.support.hosts import free_port, wait_serving
from tests.support.suite import MODULES

ROOT = Path(__file__).resolve().parent.parent


def server_url() -> str:
    """BENCH_DATABASE_URL, TEST_DATABASE_URL, else the embedded server."""
    return (
        os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or devdb.start()
    )


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@asynccontextmanager
async def scratch_database(prefix: str) -> AsyncIterator[str]:
    base = server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield with_database(base, name)
    finally:
        admin = await asyncpg.connect(base)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@dataclass
class Suite:
    ports: dict[str, int]
    pids: dict[str, int]

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each service process, and PostgreSQL's processes together,
        have used so far: per-request CPU is far steadier than throughput on a shared, noisy
        machine."""
        found = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        found["postgres"] = postgres_cpu_seconds()
        return found

    def cpu_ms_per(self, before: dict[str, float], count: int) -> dict[str, float]:
        after = self.cpu_seconds()
        return {name: (after[name] - before[name]) * 1000 / max(count, 1) for name in after}


def rss_mb(pid: int) -> float:
    """A process's resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """The CPU of every PostgreSQL process on this machine (the server the benchmarks use;
    backends come and go, so a connection that closed during the run is missed: see
    `postgres_cpu_sampled`)."""
    return sum(postgres_cpu_by_pid().values())


def postgres_cpu_by_pid() -> dict[int, float]:
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(postgres)" in text:
            fields = text.rsplit(")", 1)[1].split()
            found[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf(
                "SC_CLK_TCK"
            )
    return found


@asynccontextmanager
async def postgres_cpu_sampled(every: float = 0.1) -> AsyncIterator[Callable[[], float]]:
    """PostgreSQL's CPU seconds while the block runs, backends that exit during it included
    (a CLI's connections close with it, taking their CPU out of /proc): each backend is read
    every `every` seconds and its last reading kept. Yields a function giving the total."""
    start = postgres_cpu_by_pid()
    last = dict(start)

    async def sample() -> None:
        while True:
            last.update(postgres_cpu_by_pid())
            await asyncio.sleep(every)

    task = asyncio.create_task(sample())
    try:
        yield lambda: sum(cpu - start.get(pid, 0.0) for pid, cpu in last.items())
    finally:
        task.cancel()
        last.update(postgres_cpu_by_pid())


# The two tracing profiles every benchmark runs: production samples (parent-based, 10 % of
# new traces); full records everything, so that the cost of tracing stays visible. Both export
# over OTLP to a sink process, as they would to a collector.
PROFILES: dict[str, dict[str, str]] = {
    "production": {
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    },
    "full": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
}
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
# BENCH_CHECK=1 (`make bench-check`): the production profile only, no floor, no round trips;
# each path runs BENCH_OPS operations and prints the `CPU <name> <ms>` line that
# bench/budget.py holds against bench/budget.json. CPU per operation, not throughput: this
# shared machine cannot hold a rate steady, but the work per operation stays put.
CHECK = os.environ.get("BENCH_CHECK") == "1"
OPS = int(os.environ.get("BENCH_OPS", "600"))


def profiles() -> tuple[str, ...]:
    """The tracing profiles to run: both, or production alone when checking the budget."""
    return ("production",) if CHECK else tuple(PROFILES)


@dataclass
class Rate:
    label: str
    per_second: float
    p50_ms: float = 0.0
    p99_ms: float = 0.0

    def __str__(self) -> str:
        latency = f"  p50 {self.p50_ms:6.1f} ms  p99 {self.p99_ms:6.1f} ms" if self.p99_ms else ""
        return f"{self.label:<34} {self.per_second:9.0f} /s{latency}"


@dataclass
class Measured:
    floor: Rate
    path: Rate
    cpu_ms: dict[str, float]  # per operation, per process
    round_trips: dict[str, float] = field(default_factory=dict)  # per operation

    @property
    def ratio(self) -> float:
        return self.path.per_second / self.floor.per_second


def report(name: str, profile: str, measured: Measured) -> None:
    """The floor, the figure, the ratio, CPU and round trips per operation; and, for the
    production profile, the lines `RATIO <name> <value>` and `CPU <name> <ms>` (every process,
    PostgreSQL included) that bench/budget.py reads."""
    if CHECK:
        report_cpu(name, measured.cpu_ms)
        return
    print(f"[{name} / {profile} tracing]")
    print(f"  floor  {measured.floor}")
    print(f"  path   {measured.path}")
    print(f"  ratio  {measured.ratio:.3f} of the floor")
    cpu = "  ".join(f"{n} {ms:.2f}" for n, ms in measured.cpu_ms.items())
    print(f"  CPU ms per op: {cpu}")
    if measured.round_trips:
        trips = "  ".join(f"{k} {v:.3g}" for k, v in sorted(measured.round_trips.items()))
        print(f"  per op (from the traces): {trips}")
    if profile == "production":
        print(f"RATIO {name} {measured.ratio:.3f}")
        print(f"CPU {name} {sum(measured.cpu_ms.values()):.3f}")
    sys.stdout.flush()


def report_cpu(name: str, cpu_ms: dict[str, float]) -> None:
    cpu = "  ".join(f"{n} {ms:.3f}" for n, ms in cpu_ms.items())
    print(f"[{name}] CPU ms per op: {cpu}")
    print(f"CPU {name} {sum(cpu_ms.values()):.3f}")
    sys.stdout.flush()


class SpanSink:
    """Counts of the spans the services export, by service and kind (see bench/sink.py)."""

    def __init__(self, port: int, path: Path) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"
        self.path = path

    def env(self, profile: str) -> dict[str, str]:
        """The environment of the services for a tracing profile, exporting to this sink
        (quickly and without dropping spans, so that the counts are whole)."""
        return {
            **PROFILES[profile],
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_BSP_MAX_QUEUE_SIZE": "500000",
        }

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = json.loads(self.path.read_text()) if self.path.exists() else {}
        return found

    async def per_operation(self, run: Callable[[], Awaitable[int]]) -> dict[str, float]:
        """Spans per operation while `run` (which returns how many operations it did) runs
        alone; SQL statements and gRPC calls are the round trips. Meaningful at full tracing."""
        await asyncio.sleep(1.0)  # let earlier spans arrive
        before = self.counts()
        count = await run()
        await asyncio.sleep(1.5)
        after = self.counts()
        return {
            key: (after[key] - before.get(key, 0)) / count
            for key in after
            if key.endswith((" sql", " rpc")) and after[key] > before.get(key, 0)
        }


@asynccontextmanager
async def span_sink() -> AsyncIterator[SpanSink]:
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "spans.json"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.sink", str(port), str(path), cwd=ROOT
        )
        try:
            await wait_port(port)
            yield SpanSink(port, path)
        finally:
            process.terminate()
            await process.wait()


async def each_profile(measure: Callable[[SpanSink, str], Awaitable[None]]) -> None:
    """Run `measure` once per tracing profile, the services exporting to one sink."""
    async with span_sink() as sink:
        for profile in profiles():
            await measure(sink, profile)


async def wait_port(port: int, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            writer.close()
            return


async def floor_and_path(
    running: Suite,
    clients: int,
    floor: tuple[str, Callable[[int, int], Awaitable[object]]],
    path: tuple[str, Callable[[int, int], Awaitable[object]]],
) -> Measured:
    """The floor, then the path, from `clients` concurrent loops on the same processes; CPU is
    counted over the path's run (over OPS operations alone when checking the budget)."""
    if CHECK:
        cpu_ms = await cpu_ms_per_call(running.cpu_seconds, clients, OPS, path[1])
        return Measured(Rate(floor[0], 0), Rate(path[0], 0), cpu_ms)
    floor_count, floor_latencies = await closed_loop(clients, SECONDS / 2, floor[1])
    await closed_loop(clients, 1, path[1])  # warm up: pools, caches, JIT-free but lazy imports
    cpu = running.cpu_seconds()
    count, latencies = await closed_loop(clients, SECONDS, path[1])
    return Measured(
        Rate(
            floor[0], floor_count / (SECONDS / 2), p(floor_latencies, 0.5), p(floor_latencies, 0.99)
        ),
        Rate(path[0], count / SECONDS, p(latencies, 0.5), p(latencies, 0.99)),
        running.cpu_ms_per(cpu, count),
    )


async def round_trips(
    sink: SpanSink, profile: str, call: Callable[[int, int], Awaitable[object]], clients: int
) -> dict[str, float]:
    """Round trips per operation of `call` (counted at full tracing only)."""
    if profile != "full":
        return {}

    async def run() -> int:
        count, _ = await closed_loop(clients, 2, call)
        return count

    return await sink.per_operation(run)


@asynccontextmanager
async def suite(
    database_url: str, names: tuple[str, ...], env: dict[str, str] | None = None
) -> AsyncIterator[Suite]:
    """Each named service as its own process (as in production), on free ports, wired to each
    other; waits until every one is healthy. `env` may override any variable (e.g. an
    address, to put a proxy in between)."""
    ports = {name: free_port() for name in names}
    full_env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        "DB_POOL_MAX": os.environ.get("DB_POOL_MAX", "32"),
        **{f"{n.upper()}_PORT": str(port) for n, port in ports.items()},
        **{f"{n.upper()}_ADDR": f"127.0.0.1:{port}" for n, port in ports.items()},
        **(env or {}),
    }
    processes = {}
    try:
        for name in names:
            processes[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", MODULES[name], cwd=ROOT, env=full_env
            )
            if name != "gateway":  # later services need the earlier ones up
                await wait_serving(f"127.0.0.1:{ports[name]}", within=30)
        if "gateway" in names:
            await wait_http(f"http://127.0.0.1:{ports['gateway']}/healthz")
        yield Suite(ports, {name: p.pid for name, p in processes.items()})
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            await asyncio.wait_for(process.wait(), 15)


async def wait_http(url: str, within: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} not up after {within} s")


@asynccontextmanager
async def ledger_process(
    database_url: str,
) -> AsyncIterator[ledger_pb2_grpc.LedgerServiceAsyncStub]:
    """The ledger as its own process, and a stub connected to it."""
    async with suite(database_url, ("ledger",)) as running:
        async with grpc.aio.insecure_channel(running.address("ledger")) as channel:
            yield ledger_pb2_grpc.LedgerServiceStub(channel)


def pgbench_tps(
    database_url: str, clients: int = 8, seconds: int = 10, mode: str = "-b tpcb-like"
) -> float:
    """Transactions per second pgbench gets on this server now (`mode`: "-b tpcb-like" for
    TPC-B-like writes, "-S" for select-only)."""
    pgbench = shutil.which("pgbench") or str(devdb.bindir() / "pgbench")
    subprocess.run([pgbench, "-i", "-q", "-s", "10", database_url], check=True, capture_output=True)
    out = subprocess.run(
        [pgbench, *mode.split(), "-c", str(clients), "-j", "2", "-T", str(seconds), database_url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([0-9.]+)", out)
    assert match, out
    return float(match[1])


async def closed_loop(
    clients: int, seconds: float, call: Callable[[int, int], Awaitable[object]]
) -> tuple[int, list[float]]:
    """Run `clients` loops calling `call(client, i)` for `seconds`; count and latencies (s)."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def loop(client: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            await call(client, i)
            latencies.append(time.perf_counter() - started)
            i += 1

    await asyncio.gather(*(loop(c) for c in range(clients)))
    return len(latencies), latencies


async def cpu_ms_per_call(
    cpu_seconds: Callable[[], dict[str, float]],
    clients: int,
    calls: int,
    call: Callable[[int, int], Awaitable[object]],
) -> dict[str, float]:
    """CPU milliseconds per call of each process `cpu_seconds` reads, while `clients` loops
    make `calls` calls in all, after a warm-up of a tenth as many."""

    async def run(each: int) -> int:
        async def loop(client: int) -> None:
            for i in range(each):  # like closed_loop: `i` counts this client's calls
                await call(client, i)

        await asyncio.gather(*(loop(c) for c in range(clients)))
        return each * clients

    await run(max(calls // clients // 10, 1))
    before = cpu_seconds()
    done = await run(max(calls // clients, 1))
    after = cpu_seconds()
    return {name: (after[name] - before[name]) * 1000 / done for name in after}


def p(latencies: list[float], q: float) -> float:
    """The q-quantile in milliseconds."""
    return statistics.quantiles(latencies, n=1000)[int(q * 1000) - 1] * 1000


async def load_members(database_url: str, members: int, lots_per_member: int, expires: str) -> None:
    """Bulk-load members with `lots_per_member` lots of 10 points each, straight in SQL (the
    ledger's schema must exist). `expires` is an SQL expression for each lot's expiry, given
    the lot number `g`. Balances, transfers and lots agree, so `Audit` stays clean."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "ledger"})
    try:
        await conn.execute(
            f"""
            INSERT INTO members (user_id, balance, earned)
            SELECT 'member-' || m, 10 * {lots_per_member}, 10 * {lots_per_member}
            FROM generate_series(1, {members}) m;
            INSERT INTO transfers (user_id, kind, debit_account, credit_account, amount,
                                   request_id)
            SELECT 'member-' || (g % {members} + 1), 'EARN', 'issuance:bench', 'member', 10,
                   'load-' || g
            FROM generate_series(1, {members * lots_per_member}) g;
            INSERT INTO lots (user_id, transfer_id, source, granted, remaining, expires_at)
            SELECT user_id, transfer_id, 'bench', 10, 10, {expires}
            FROM (SELECT user_id, transfer_id, transfer_id AS g FROM transfers
                  WHERE request_id LIKE 'load-%') t;
            ANALYZE;
            """
        )
    finally:
        await conn.close()
