#!/usr/bin/env python3
"""PgBouncer in transaction mode in front of PostgreSQL, for deployments with many service
replicas: thousands of client connections over a few dozen server ones.

A transaction pooler hands each transaction whichever server connection is free, so nothing a
client sets for its session survives: the services' schema (search_path) and generic plans are
set by one database alias per service instead, on every server connection it opens
(`connect_query`). A service behind it sets `DB_POOL_MODE=transaction` (no prepared statements
kept across transactions), its own `<SERVICE>_DATABASE_URL` naming its alias, and
`DATABASE_DIRECT_URL` for what needs a session (its LISTEN connection, the migrations' lock).

    python scripts/pooler.py config HOST:PORT LISTEN_PORT   # print pgbouncer.ini
Standard library only; scripts/ha.py runs it in front of a failover formation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

SERVICES = ("ledger", "rules", "mall", "webhooks")
DATABASE = "points"


def alias(service: str) -> str:
    """The database name a service's DATABASE_URL gives behind the pooler."""
    return f"{DATABASE}_{service}"


def config(
    target: str, listen_port: int, user: str, run_dir: Path, database: str = DATABASE
) -> str:
    host, _, port = target.rpartition(":")
    databases = "\n".join(
        f"{alias(s)} = host={host} port={port} dbname={database} "
        f"connect_query='SET search_path = {s}; SET plan_cache_mode = force_generic_plan'"
        for s in SERVICES
    )
    return f"""[databases]
{databases}
{database} = host={host} port={port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir = {run_dir}
pidfile = {run_dir}/pgbouncer.pid
logfile = {run_dir}/pgbouncer.log
auth_type = trust
auth_file = {run_dir}/pgbouncer.users
admin_users = {user}
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
server_reset_query =
ignore_startup_parameters = extra_float_digits
"""


class Pooler:
    """One PgBouncer process, as `user` (it refuses to run as root)."""

    def __init__(
        self,
        run_dir: Path,
        listen_port: int,
        user: str,
        owner: str | None,
        database: str = DATABASE,
    ) -> None:
        self.run_dir = run_dir
        self.port = listen_port
        self.user = user
        self.owner = owner
        self.database = database
        self.target = ""

    def url(self, service: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{alias(service)}"

    def start(self, target: str) -> None:
        self._write(target)
        (self.run_dir / "pgbouncer.users").write_text(f'"{self.user}" ""\n')
        command = ["pgbouncer", "-d", str(self.run_dir / "pgbouncer.ini")]
        if self.owner is not None:
            command = ["runuser", "-u", self.owner, "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd="/")

    def retarget(self, target: str) -> None:
        """Point at another server (the new primary): the configuration is read again, and
        server connections to the old one are dropped as they come free."""
        if target != self.target:
            self._write(target)
            os.kill(self._pid(), signal.SIGHUP)

    def show(self, what: str) -> list[list[str]]:
        """Rows of the admin console's SHOW `what` (CLIENTS, SERVERS, POOLS...)."""
        done = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d",
             "pgbouncer", "-AtX", "-F", "\t", "-c", f"SHOW {what}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return [line.split("\t") for line in done.stdout.splitlines()]

    def stop(self) -> None:
        try:
            os.kill(self._pid(), signal.SIGTERM)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass

    def _write(self, target: str) -> None:
        self.target = target
        (self.run_dir / "pgbouncer.ini").write_text(
            config(target, self.port, self.user, self.run_dir, self.database)
        )

    def _pid(self) -> int:
        return int((self.run_dir / "pgbouncer.pid").read_text().strip())


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[1] == "config":
        print(config(argv[2], int(argv[3]), os.environ.get("USER", "postgres"), Path("/tmp")))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
