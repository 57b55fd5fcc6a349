#!/usr/bin/env python3
"""The embedded default database: a private PostgreSQL cluster.

Used by `make run` and `make test` when no DATABASE_URL / TEST_DATABASE_URL is given. The
cluster persists between runs (a restart loses no data). It lives in `.data/pg` of the
checkout; as root it belongs to an unprivileged system user (PostgreSQL refuses to run as
root), who may not be able to enter the checkout (`/root/...`, a `mktemp -d` directory), so as
root it lives in /var/lib/points-pg/<checkout id>/ instead. POINTS_PG_DATA overrides both.
Standard library only.

    python scripts/devdb.py start    # init if needed, start, print the URL
    python scripts/devdb.py stop
    python scripts/devdb.py url
    python scripts/devdb.py destroy  # stop and delete the cluster's data
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "points"
OWNER = "points-pg"  # system user owning the cluster when we run as root
SYSTEM_DATA = Path("/var/lib/points-pg")


def data_dir(root: Path = ROOT, *, as_root: bool | None = None) -> Path:
    """Where the cluster lives (see the module docstring)."""
    configured = os.environ.get("POINTS_PG_DATA")
    if configured:
        return Path(configured)
    if as_root if as_root is not None else os.geteuid() == 0:
        checkout = hashlib.sha256(str(root).encode()).hexdigest()[:12]
        return SYSTEM_DATA / checkout / "pg"
    return root / ".data" / "pg"


DATA = data_dir()
PORT = int(os.environ.get("POINTS_PG_PORT", "55432"))


class DevDbError(RuntimeError):
    pass


def bindir() -> Path:
    """Directory with initdb/pg_ctl; installs Debian's server package as a last resort (root)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.insert(0, out.stdout.strip())
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
            check=True,
            env=env,
        )
        return bindir()
    raise DevDbError("no PostgreSQL server binaries found: install postgresql, or set DATABASE_URL")


def _version(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


def _owner() -> str | None:
    """The user to run PostgreSQL as, or None to run as ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(OWNER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OWNER],
            check=True,
        )
    return OWNER


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    owner = _owner()
    if owner is not None:
        cmd = ["runuser", "-u", owner, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/")


def _require(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        raise DevDbError(f"{what} failed:\n{result.stdout}{result.stderr}")


def url(database: str = DATABASE) -> str:
    return f"postgresql://postgres@127.0.0.1:{PORT}/{database}"


def is_running() -> bool:
    return _run([str(bindir() / "pg_ctl"), "status", "-D", str(DATA)]).returncode == 0


def init() -> None:
    if (DATA / "PG_VERSION").exists():
        return
    DATA.mkdir(parents=True, exist_ok=True)
    owner = _owner()
    if owner is not None:
        shutil.chown(DATA, owner, owner)
        # The owner must reach the data directory through every parent we created.
        for parent in DATA.parents:
            if parent == SYSTEM_DATA.parent or parent == Path("/"):
                break
            if SYSTEM_DATA in (parent, *parent.parents):
                shutil.chown(parent, owner, owner)
    DATA.chmod(0o700)
    _require(
        _run(
            [
                str(bindir() / "initdb"),
                "-D",
                str(DATA),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            ]
        ),
        "initdb",
    )


def start() -> str:
    init()
    if not is_running():
        options = (
            f"-p {PORT} -c listen_addresses=127.0.0.1 -k {DATA} "
            "-c max_connections=300 -c shared_buffers=256MB"
        )
        _require(
            _run(
                [
                    str(bindir() / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(DATA),
                    "-l",
                    str(DATA / "server.log"),
                    "-o",
                    options,
                ]
            ),
            "pg_ctl start",
        )
    created = _run(
        [
            str(bindir() / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(PORT),
            "-U",
            "postgres",
            DATABASE,
        ]
    )
    if created.returncode != 0 and "already exists" not in created.stderr:
        _require(created, "createdb")
    return url()


def stop() -> None:
    if (DATA / "PG_VERSION").exists() and is_running():
        _require(
            _run([str(bindir() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(DATA)]),
            "pg_ctl stop",
        )


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "start"
    try:
        if command == "start":
            print(start())
        elif command == "stop":
            stop()
        elif command == "url":
            print(url())
        elif command == "status":
            print("running" if is_running() else "stopped")
        elif command == "destroy":
            stop()
            shutil.rmtree(DATA, ignore_errors=True)
            if DATA.parent.parent == SYSTEM_DATA:
                shutil.rmtree(DATA.parent, ignore_errors=True)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except DevDbError as exc:
        print(f"devdb: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
