"""`make run`'s supervisor: every service healthy within 10 s, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from scripts import devdb
from tests.support.hosts import ROOT, free_port, make_run


def _children(pid: int) -> set[int]:
    """Every live descendant of `pid`, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def test_run_starts_every_service_and_ctrl_c_stops_all(database_url: str) -> None:
    ports = {name: free_port() for name in ("ledger", "rules", "mall", "webhooks", "gateway")}
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()},
    }
    started = time.monotonic()
    suite, lines = make_run(env)
    try:
        assert lines[-1].startswith("all services up"), lines
        assert time.monotonic() - started < 10 + 5  # 10 s to healthy, plus interpreter start
        for name, port in ports.items():
            assert any(line.startswith(name) and line.endswith(f":{port}") for line in lines)
        services = _children(suite.pid)
        assert len(services) >= 5
        stopping = time.monotonic()
        suite.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert suite.wait(timeout=10) == 0
        assert time.monotonic() - stopping < 5
        left_behind = {pid for pid in services if Path(f"/proc/{pid}").exists()}
        assert not left_behind
    finally:
        if suite.poll() is None:
            suite.kill()
            suite.wait()


def test_embedded_database_starts_keeps_data_and_stops() -> None:
    # Where the cluster's user can reach it: as root that is not the checkout (which may be a
    # private directory), see devdb.data_dir.
    base = devdb.SYSTEM_DATA if os.geteuid() == 0 else ROOT / ".data"
    data = base / f"test-{os.getpid()}"
    env = {**os.environ, "POINTS_PG_DATA": str(data), "POINTS_PG_PORT": str(free_port())}
    script = [sys.executable, "scripts/devdb.py"]
    try:
        url = subprocess.run(
            [*script, "start"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.strip()
        assert url.startswith("postgresql://postgres@127.0.0.1:")
        psql = [str(devdb.bindir() / "psql"), url, "-tAc"]
        subprocess.run(
            [*psql, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)"],
            check=True,
            capture_output=True,
        )
        subprocess.run([*script, "stop"], cwd=ROOT, env=env, check=True, timeout=60)
        status = subprocess.run(
            [*script, "status"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        assert status.stdout.strip() == "stopped"
        subprocess.run(
            [*script, "start"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120
        )
        kept = subprocess.run(
            [*psql, "SELECT v FROM kept"], capture_output=True, text=True, check=True
        )
        assert kept.stdout.strip() == "7"  # a restart loses no data
    finally:
        subprocess.run([*script, "stop"], cwd=ROOT, env=env, timeout=60)
        subprocess.run(["rm", "-rf", str(data)], check=False)


def test_embedded_database_works_from_a_checkout_others_cannot_enter(tmp_path: Path) -> None:
    """As root the cluster's user cannot enter /root/... or a `mktemp -d` directory: the
    cluster must live where it can (and `destroy` removes it)."""
    checkout = tmp_path / "private-checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "devdb.py", checkout / "scripts" / "devdb.py")
    tmp_path.chmod(0o700)  # like mktemp -d, or /root
    env = {k: v for k, v in os.environ.items() if k != "POINTS_PG_DATA"}
    env["POINTS_PG_PORT"] = str(free_port())
    script = [sys.executable, str(checkout / "scripts" / "devdb.py")]
    try:
        url = subprocess.run(
            [*script, "start"], env=env, capture_output=True, text=True, timeout=120, check=True
        ).stdout.strip()
        psql = [str(devdb.bindir() / "psql"), url, "-tAc", "SELECT 1"]
        assert (
            subprocess.run(psql, capture_output=True, text=True, check=True).stdout.strip() == "1"
        )
    finally:
        subprocess.run([*script, "destroy"], env=env, timeout=60, check=False)
    status = subprocess.run([*script, "status"], env=env, capture_output=True, text=True)
    assert status.stdout.strip() == "stopped"
