"""The suite a year from now: `make run`'s suite, its embedded database included, runs with the
clock a year ahead (libfaketime), and every line of the README's try-it section and every
request example of the OpenAPI document still works. Nothing documented may depend on today's
date."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from scripts import devdb
from tests.support.gateway_calls import send_request_examples
from tests.support.hosts import ROOT, free_port, make_run

FAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None)
AHEAD = timedelta(days=365)


def offset_already() -> timedelta:
    """How far ahead this process's own clock already runs (the whole suite run under
    libfaketime, `FAKETIME=+Nd`): the suite is started a year ahead of that."""
    if "faketime" not in os.environ.get("LD_PRELOAD", ""):
        return timedelta()
    days = re.fullmatch(r"\+(\d+)d", os.environ.get("FAKETIME", ""))
    return timedelta(days=int(days[1])) if days else timedelta()


def try_it_lines() -> list[str]:
    """The README's try-it block, line by line."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("try it", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


@pytest.fixture
def suite_a_year_ahead() -> Iterator[dict[str, str]]:
    """`make run`'s suite (scripts/run_suite.py, starting its own embedded database) with the
    clock of every process a year ahead; yields the environment a user's shell would have."""
    if FAKETIME is None:
        pytest.fail("libfaketime is missing: apt-get install faketime (make test does, as root)")
    base = devdb.SYSTEM_DATA if os.geteuid() == 0 else ROOT / ".data"
    ports = {name: free_port() for name in ("ledger", "rules", "mall", "webhooks", "gateway")}
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")},
        "LD_PRELOAD": str(FAKETIME),
        "FAKETIME": f"+{(offset_already() + AHEAD).days}d",
        "POINTS_PG_DATA": str(base / f"year-ahead-{os.getpid()}"),
        "POINTS_PG_PORT": str(free_port()),
        **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()},
        **{f"{name.upper()}_ADDR": f"127.0.0.1:{port}" for name, port in ports.items()},
        "LOG_LEVEL": "WARNING",
    }
    suite, lines = make_run(env)
    try:
        assert lines and lines[-1].startswith("all services up"), lines
        yield env
    finally:
        if suite.poll() is None:
            suite.send_signal(signal.SIGINT)
            suite.wait(timeout=30)
        subprocess.run([sys.executable, "scripts/devdb.py", "destroy"], cwd=ROOT, env=env)
        shutil.rmtree(env["POINTS_PG_DATA"], ignore_errors=True)


async def test_the_readme_and_the_documented_examples_work_a_year_from_now(
    suite_a_year_ahead: dict[str, str],
) -> None:
    env = suite_a_year_ahead
    database = devdb.url().replace(str(devdb.PORT), env["POINTS_PG_PORT"])
    conn = await asyncpg.connect(database)
    try:
        database_now = await conn.fetchval("SELECT now()")
    finally:
        await conn.close()
    assert database_now > datetime.now(UTC) + AHEAD - timedelta(days=1)  # the clock is ahead

    gateway = f"localhost:{env['GATEWAY_PORT']}"
    script = "\n".join(try_it_lines()).replace("localhost:8080", gateway)
    done = await _shell(f"set -euo pipefail\n{script}", env)
    output = done.stdout.replace(" ", "")
    assert done.returncode == 0, f"{script}\n{done.stdout}{done.stderr}"
    assert '"status":4' not in output and '"status":5' not in output, done.stdout
    assert '"streak":1' in output, done.stdout  # the check-in counted, on the shifted day
    assert '"ok":true' in output, done.stdout  # points audit found nothing broken
    assert done.stdout.rstrip().endswith("up to date"), done.stdout  # points migrate status

    minted = await _shell(
        ".venv/bin/python -m gateway.token ops --scope admin --scope events:write", env
    )
    token = minted.stdout.strip()
    async with httpx.AsyncClient(base_url=f"http://{gateway}", timeout=30) as http:
        await send_request_examples(http, {"Authorization": f"Bearer {token}"})


async def _shell(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `script` in bash from the checkout, as a user's terminal would."""
    return await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
