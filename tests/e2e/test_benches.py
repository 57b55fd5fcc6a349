"""Every benchmark runs to its end. `make bench` runs them one after another and stops at the
first that fails, so a bench that cannot finish hides every figure after it: each runs here on
a small load (a few seconds), its figures unread."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.hosts import ROOT

BENCHES = sorted(p.name for p in (ROOT / "bench").glob("[a-z]*_*.py"))
SMALL = {
    "BENCH_SECONDS": "0.3",
    "BENCH_MEMBERS": "300",
    "BENCH_IMPORT_ROWS": "300",
    "BENCH_EXPORT_ROWS": "3000",
    "BENCH_BATCHES": "2",
    "BENCH_LOTS": "2000",
    "BENCH_WEBHOOK_EVENTS": "200",
}


@pytest.mark.slow
@pytest.mark.parametrize("script", BENCHES)
async def test_the_bench_runs_to_its_end(script: str, server_url: str) -> None:
    env = {**os.environ, **SMALL, "BENCH_DATABASE_URL": server_url}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(Path("bench") / script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), "a bench prints its figures"
