"""Bulk data in and out (`bulk_io`), through the operator CLI as installed:

- `points import balances` of BENCH_IMPORT_ROWS rows (1,000,000 by default), streamed with
  COPY and applied set-based in the ledger's database, against the floor of PostgreSQL's own
  `COPY` of the same file into a plain table in the same run;
- `points export transfers` of BENCH_EXPORT_ROWS transfers (10,000,000 by default), against
  the floor of `COPY (SELECT ...) TO STDOUT` of the same rows by psql.

Both print rows per second, the ratio to the floor, CPU ms per row per process and the
CLI's peak memory (an export must not grow with the table).
"""

from __future__ import annotations

import asyncio
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.support import (
    CHECK,
    OPS,
    PROFILES,
    Measured,
    Rate,
    postgres_cpu_sampled,
    report,
    scratch_database,
    suite,
)
from scripts import devdb

# Checking the budget imports BENCH_OPS rows (the CPU per row is what is held), no export.
IMPORT_ROWS = OPS if CHECK else int(os.environ.get("BENCH_IMPORT_ROWS", "1000000"))
EXPORT_ROWS = int(os.environ.get("BENCH_EXPORT_ROWS", "10000000"))
POINTS = str(Path(sys.executable).parent / "points")


def run_cli(*args: str, env: dict[str, str]) -> tuple[float, float, float]:
    """Run the CLI to completion: wall seconds, its CPU seconds and its peak RSS (MB)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [POINTS, *args], env={**os.environ, **env}, stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    assert os.waitstatus_to_exitcode(status) == 0, args
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def write_balances(path: Path, rows: int) -> None:
    expiry = (datetime.now(UTC) + timedelta(days=400)).date().isoformat()
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["user_id", "points", "expires_at", "reference"])
        for n in range(rows):
            writer.writerow([f"legacy-{n % 200_000}", 1 + n % 500, expiry, f"r{n}"])


async def copy_floor(url: str, path: Path) -> float:
    """Rows per second PostgreSQL ingests the same file with COPY into a plain table."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE copy_floor (user_id text, points bigint, expires_at date, ref text)"
        )
        started = time.perf_counter()
        await conn.copy_to_table("copy_floor", source=path, format="csv", header=True)
        return IMPORT_ROWS / (time.perf_counter() - started)
    finally:
        await conn.close()


async def bench_import() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "balances.csv"
        write_balances(path, IMPORT_ROWS)
        async with scratch_database("bench_import") as url:
            floor = await copy_floor(url, path)
            async with suite(url, ("ledger",), PROFILES["production"]) as running:
                cpu = running.cpu_seconds()
                # The ledger runs beside the import, as in production (its schema, its jobs).
                async with postgres_cpu_sampled() as postgres_seconds:
                    elapsed, cli_cpu, rss = await asyncio.to_thread(
                        run_cli, "import", "balances", str(path), env={"DATABASE_URL": url}
                    )
                per_row = running.cpu_ms_per(cpu, IMPORT_ROWS)
    per_row["postgres"] = postgres_seconds() * 1000 / IMPORT_ROWS
    per_row["cli"] = cli_cpu * 1000 / IMPORT_ROWS
    report(
        "bulk_import",
        "production",
        Measured(
            Rate("COPY of the file into a table (rows)", floor),
            Rate(f"points import balances x{IMPORT_ROWS:,}", IMPORT_ROWS / elapsed),
            per_row,
        ),
    )
    print(f"  (CPU ms per row; {elapsed:.0f} s in all, CLI peak RSS {rss:.0f} MB)")


async def seed_transfers(url: str, rows: int) -> None:
    """`rows` transfers written straight into the ledger's table (the ledger made its schema)."""
    conn = await asyncpg.connect(url, server_settings={"search_path": "ledger"})
    try:
        for start in range(0, rows, 1_000_000):
            await conn.execute(
                """
                INSERT INTO transfers (user_id, kind, debit_account, credit_account, amount,
                                       request_id, reason_code, created_at)
                SELECT 'm-' || (n % 100000), 'EARN', 'issuance:bench', 'member', 1 + n % 100,
                       'seed-' || n, 'BENCH', now() - make_interval(secs => n % 86400)
                FROM generate_series($1::bigint, $2::bigint) AS n
                """,
                start,
                min(start + 1_000_000, rows) - 1,
            )
        await conn.execute("ANALYZE transfers")
    finally:
        await conn.close()


def psql_copy_rate(url: str, rows: int) -> float:
    """Rows per second psql receives `COPY (SELECT ...) TO STDOUT` of the same rows."""
    psql = shutil.which("psql") or str(devdb.bindir() / "psql")
    query = (
        "COPY (SELECT user_id, transfer_id, kind, debit_account, credit_account, amount, "
        "reason_code, metadata, request_id, related_transfer_id, hold_id, created_at "
        "FROM ledger.transfers ORDER BY created_at, transfer_id) TO STDOUT (FORMAT csv, HEADER)"
    )
    started = time.perf_counter()
    subprocess.run([psql, url, "-qc", query], check=True, stdout=subprocess.DEVNULL)
    return rows / (time.perf_counter() - started)


async def bench_export() -> None:
    async with scratch_database("bench_export") as url:
        async with suite(url, ("ledger",), PROFILES["production"]):
            pass  # the ledger's schema, by its own migrations
        await seed_transfers(url, EXPORT_ROWS)
        floor = await asyncio.to_thread(psql_copy_rate, url, EXPORT_ROWS)
        # The export's backend exits with the CLI, taking its CPU time out of /proc, so only
        # the CLI's own CPU is reported.
        elapsed, cli_cpu, rss = await asyncio.to_thread(
            run_cli, "export", "transfers", "--output", "/dev/null", env={"DATABASE_URL": url}
        )
    report(
        "bulk_export",
        "production",
        Measured(
            Rate("psql COPY TO STDOUT (rows)", floor),
            Rate(f"points export transfers x{EXPORT_ROWS:,}", EXPORT_ROWS / elapsed),
            {"cli": cli_cpu * 1000 / EXPORT_ROWS},
        ),
    )
    print(f"  (CPU ms per row; {elapsed:.0f} s in all, CLI peak RSS {rss:.0f} MB)")


async def main() -> None:
    await bench_import()
    if not CHECK:
        await bench_export()


if __name__ == "__main__":
    asyncio.run(main())
