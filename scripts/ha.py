#!/usr/bin/env python3
"""A pg_auto_failover formation on this machine: a monitor, a primary and its synchronous
secondaries, each node its own PostgreSQL on its own port and data directory, and PgBouncer
(transaction pooling) in front of whichever node is primary. For the failover tests and for
trying the HA setup on one machine; a production formation puts each node on its own host
(docs/operations.md, "High availability").

    python scripts/ha.py up [--secondaries N] [--pooler]   # start; print the multi-host URL
    python scripts/ha.py pooler        # PgBouncer following the primary (what --pooler runs)
    python scripts/ha.py status        # the monitor's view of the nodes
    python scripts/ha.py url           # the services' DATABASE_URL (multi-host, read-write)
    python scripts/ha.py kill NODE     # SIGKILL a node, its keeper and postmaster and all
    python scripts/ha.py start NODE    # start a node again: it rejoins as a secondary
    python scripts/ha.py down          # stop everything, keep the data
    python scripts/ha.py destroy       # stop and delete

Nodes are node1, node2, ...; ports follow POINTS_HA_PORT (default 56000): the monitor on it,
node N on it + N, PgBouncer on it + 10 (the services' URLs behind it: scripts/pooler.py). The
data lives where the embedded database's would (scripts/devdb.py), under `ha/`, or in
POINTS_HA_DIR. Standard library only.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts import devdb
from scripts.pooler import Pooler

DATABASE = "points"
# Failure detection for one machine and its tests: the monitor checks every second and calls a
# node unhealthy after 4 s; a primary that cannot be reached is given 5 s to demote itself
# before its secondary is promoted. pg_auto_failover's defaults (20 s and 30 s) suit a network
# where a short partition must not cost a failover.
MONITOR_SETTINGS = {
    "pgautofailover.health_check_period": "1000",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "500",
    "pgautofailover.node_considered_unhealthy_timeout": "4000",
    "pgautofailover.primary_demote_timeout": "5000",
}


class HaError(RuntimeError):
    pass


@dataclass(frozen=True)
class Node:
    name: str
    port: int
    data: Path


class Formation:
    def __init__(self, base: Path, port: int) -> None:
        self.base = base
        self.port = port
        self.monitor = Node("monitor", port, base / "monitor")

    def node(self, name: str) -> Node:
        number = int(name.removeprefix("node"))
        return Node(name, self.port + number, self.base / name)

    def nodes(self) -> list[Node]:
        return sorted(
            (self.node(p.name) for p in self.base.glob("node*") if p.is_dir()),
            key=lambda n: n.port,
        )

    @property
    def monitor_url(self) -> str:
        return f"postgres://autoctl_node@127.0.0.1:{self.port}/pg_auto_failover?sslmode=disable"

    def url(self, database: str = DATABASE) -> str:
        """The services' DATABASE_URL: every node, the one that takes writes chosen at connect."""
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes())
        return f"postgresql://{self.user}@{hosts}/{database}?target_session_attrs=read-write"

    @property
    def user(self) -> str:
        """The nodes' superuser: pg_autoctl's initdb names it after the owner."""
        return devdb._owner() or getpass.getuser()

    # -- running pg_autoctl as the cluster's owner ------------------------------------------

    def _env(self) -> dict[str, str]:
        return {
            "XDG_CONFIG_HOME": str(self.base / "config"),
            "XDG_DATA_HOME": str(self.base / "share"),
            "XDG_RUNTIME_DIR": str(self.base / "run"),
            "PG_CONFIG": str(devdb.bindir() / "pg_config"),
            "PATH": f"{devdb.bindir()}:/usr/bin:/bin",
            # The nodes' Unix sockets: /var/run/postgresql is not the owner's to write in.
            "PG_REGRESS_SOCK_DIR": str(self.base / "run"),
        }

    def _command(self, args: list[str]) -> list[str]:
        command = ["env", *(f"{k}={v}" for k, v in self._env().items()), *args]
        owner = devdb._owner()
        return ["runuser", "-u", owner, "--", *command] if owner is not None else command

    def autoctl(self, *args: str) -> str:
        done = subprocess.run(
            self._command(["pg_autoctl", *args]), capture_output=True, text=True, cwd="/"
        )
        if done.returncode != 0:
            raise HaError(f"pg_autoctl {args[0]} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def _spawn(self, node: Node, args: list[str]) -> None:
        """Run a node's pg_autoctl in its own process group (so `kill` takes all of it)."""
        with open(self.base / f"{node.name}.log", "ab") as log:  # the child keeps its own
            process = subprocess.Popen(
                self._command(["pg_autoctl", *args]),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd="/",
                start_new_session=True,
            )
        (self.base / f"{node.name}.pid").write_text(str(process.pid))

    # -- the formation ----------------------------------------------------------------------

    def prepare(self) -> None:
        owner = devdb._owner()
        for part in ("", "config", "share", "run"):
            (self.base / part).mkdir(parents=True, exist_ok=True)
            if owner is not None:
                shutil.chown(self.base / part, owner, owner)
        (self.base / "run").chmod(0o700)
        if owner is not None:  # the owner must reach the base through the parents we made
            for parent in self.base.parents:
                if parent in (devdb.SYSTEM_DATA.parent, Path("/")):
                    break
                if devdb.SYSTEM_DATA in (parent, *parent.parents):
                    shutil.chown(parent, owner, owner)

    def start_monitor(self) -> None:
        node = self.monitor
        if self._running(node):
            return
        if not (node.data / "PG_VERSION").exists():
            self.autoctl(
                "create", "monitor", "--pgdata", str(node.data), "--pgport", str(node.port),
                "--hostname", "127.0.0.1", "--listen", "127.0.0.1", "--auth", "trust", "--no-ssl",
            )  # fmt: skip
        self._spawn(node, ["run", "--pgdata", str(node.data)])
        self._wait(lambda: self._query(node.port, "pg_auto_failover", "SELECT 1") == "1", 60)
        settings = [f"ALTER SYSTEM SET {k} = {v}" for k, v in MONITOR_SETTINGS.items()]
        self._query(node.port, "pg_auto_failover", *settings, "SELECT pg_reload_conf()")
        demote = "SELECT current_setting('pgautofailover.primary_demote_timeout')"
        self._wait(lambda: self._query(node.port, "pg_auto_failover", demote) == "5s", 10)

    def start_node(self, node: Node) -> None:
        if self._running(node):
            return
        if (node.data / "PG_VERSION").exists():
            self._spawn(node, ["run", "--pgdata", str(node.data)])
            return
        self._spawn(
            node,
            [
                "create", "postgres", "--pgdata", str(node.data), "--pgport", str(node.port),
                "--name", node.name, "--hostname", "127.0.0.1", "--listen", "127.0.0.1",
                "--pghost", str(self.base / "run"),
                "--dbname", DATABASE, "--auth", "trust", "--no-ssl",
                "--monitor", self.monitor_url, "--run",
            ],
        )  # fmt: skip

    def up(self, secondaries: int) -> None:
        """Start the formation: the nodes it has, else a new one with `secondaries`."""
        self.prepare()
        self.start_monitor()
        known = self.nodes()
        if known:  # started before: each node takes up its role again
            for node in known:
                self.start_node(node)
            time.sleep(2 * int(MONITOR_SETTINGS["pgautofailover.health_check_period"]) / 1000)
            self.wait_until_settled(len(known))  # (the monitor's view from before, at first)
            self._wait(lambda: self.primary() is not None, 60)
            return
        for number in range(1, secondaries + 2):
            self.start_node(self.node(f"node{number}"))
            # One at a time: the first becomes primary, the next ones its secondaries.
            self.wait_until_settled(number)

    def wait_until_settled(self, nodes: int, timeout: float = 180.0) -> None:
        """Until `nodes` nodes are registered: one primary, the rest secondaries."""

        def settled() -> bool:
            for node in self.nodes()[:nodes]:
                if not self._running(node):
                    log = (self.base / f"{node.name}.log").read_text()[-3000:]
                    raise HaError(f"{node.name}'s pg_autoctl stopped:\n{log}")
            states = self.states()
            primary = [s for s in states if s["reported"] in ("primary", "single", "wait_primary")]
            if primary and nodes > 1:
                # A new secondary's base backup waits for a checkpoint: ask for one now.
                self._query(self.node(primary[0]["name"]).port, DATABASE, "CHECKPOINT")
            wanted = ["single"] if nodes == 1 else ["primary"] + ["secondary"] * (nodes - 1)
            reported = sorted(s["reported"] for s in states if s["reported"] == s["assigned"])
            return len(states) == nodes and reported == sorted(wanted)

        self._wait(settled, timeout)

    def states(self) -> list[dict[str, str]]:
        """Each node's name, reported and assigned state, from the monitor."""
        rows = self._query(
            self.port,
            "pg_auto_failover",
            "SELECT coalesce(json_agg(json_build_object('name', nodename, "
            "'reported', reportedstate, 'assigned', goalstate) ORDER BY nodeid), '[]') "
            "FROM pgautofailover.node",
        )
        return list(json.loads(rows or "[]"))

    def primary(self) -> Node | None:
        """The node that takes writes now, if any."""
        for node in self.nodes():
            if self._running(node) and self._query(
                node.port, DATABASE, "SELECT NOT pg_is_in_recovery() AND "
                "current_setting('default_transaction_read_only') = 'off'"
            ) == "t":  # fmt: skip
                return node
        return None

    def kill(self, node: Node) -> None:
        """SIGKILL the node's keeper and everything it started, its postmaster included: a
        host that dies."""
        pid_file = self.base / f"{node.name}.pid"
        if pid_file.exists():
            _signal_group(int(pid_file.read_text()))
            pid_file.unlink()
        postmaster = _postmaster(node)
        if postmaster is not None:
            _signal_group(postmaster, group=False)
            _signal_group(postmaster)  # its own group, when pg_ctl started it

    def spawn_pooler(self) -> None:
        """`ha.py pooler` in the background (stopped by `down`)."""
        with open(self.base / "pooler.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, __file__, "pooler"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={
                    **os.environ,
                    "POINTS_HA_DIR": str(self.base),
                    "POINTS_HA_PORT": str(self.port),
                },
            )
        (self.base / "pooler.pid").write_text(str(process.pid))

    def down(self) -> None:
        """Stop every node and the monitor: the keepers are killed (pg_autoctl's own stop can
        race its restarts of PostgreSQL), then a PostgreSQL still running is stopped fast. The
        data stays; a killed node recovers from its WAL when started again."""
        pooler = self.base / "pooler.pid"
        if pooler.exists():
            _signal_group(int(pooler.read_text()), signal.SIGTERM, group=False)
            pooler.unlink()
        for node in [*self.nodes(), self.monitor]:
            pid_file = self.base / f"{node.name}.pid"
            if pid_file.exists():
                _signal_group(int(pid_file.read_text()))
                pid_file.unlink()
            if (node.data / "postmaster.pid").exists():
                subprocess.run(
                    self._command(["pg_ctl", "stop", "-w", "-m", "fast", "-D", str(node.data)]),
                    capture_output=True,
                    cwd="/",
                )
        self._sweep()

    def _sweep(self) -> None:
        """Kill what is left of the formation: any process working in its directories. A
        PostgreSQL child runs in its data directory, each in a session of its own, and the
        monitor's health-check worker outlives a killed postmaster."""
        for entry in Path("/proc").iterdir():
            try:
                inside = Path(os.readlink(entry / "cwd")).is_relative_to(self.base)
            except (OSError, ValueError):
                continue
            if inside and entry.name.isdigit():
                _signal_group(int(entry.name), group=False)

    def _running(self, node: Node) -> bool:
        pid_file = self.base / f"{node.name}.pid"
        if not pid_file.exists():
            return False
        try:
            os.kill(int(pid_file.read_text()), 0)
        except ProcessLookupError:
            return False
        return True

    def _query(self, port: int, database: str, *statements: str) -> str:
        """What psql prints for `statements` (each in its own transaction); "" on failure."""
        commands = [arg for sql in statements for arg in ("-c", sql)]
        done = subprocess.run(
            [str(devdb.bindir() / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", self.user,
             "-d", database, "-AtqX", "-v", "ON_ERROR_STOP=1", *commands],
            capture_output=True, text=True, env={**os.environ, "PGCONNECT_TIMEOUT": "2"},
        )  # fmt: skip
        return done.stdout.strip() if done.returncode == 0 else ""

    @staticmethod
    def _wait(ready: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise HaError(f"not ready within {timeout:.0f} s")
            time.sleep(0.5)


def follow_primary(ha: Formation, every: float = 0.5) -> None:
    """Run PgBouncer in front of the primary and point it at each new one, until SIGTERM."""
    pooler = Pooler(ha.base / "run", ha.port + 10, ha.user, devdb._owner())
    primary = ha.primary()
    while primary is None:
        time.sleep(every)
        primary = ha.primary()
    pooler.start(f"127.0.0.1:{primary.port}")

    def stop(*_: object) -> None:
        pooler.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        time.sleep(every)
        primary = ha.primary()
        if primary is not None:
            pooler.retarget(f"127.0.0.1:{primary.port}")


def _postmaster(node: Node) -> int | None:
    """The node's postmaster process id, while its pid file exists."""
    try:
        return int((node.data / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _signal_group(pid: int, sig: int = signal.SIGKILL, group: bool = True) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def formation() -> Formation:
    configured = os.environ.get("POINTS_HA_DIR")
    base = Path(configured) if configured else devdb.data_dir().parent / "ha"
    return Formation(base, int(os.environ.get("POINTS_HA_PORT", "56000")))


def require_tools() -> None:
    """pg_auto_failover's pg_autoctl (Debian's postgresql-15-auto-failover), installed when
    missing and running as root."""
    if shutil.which("pg_autoctl"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "postgresql-15-auto-failover", "pgbouncer"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
            subprocess.run(install, check=True, env=env)
        return
    raise HaError("pg_autoctl is missing: apt-get install postgresql-15-auto-failover pgbouncer")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("node", nargs="?", help="for kill and start: node1, node2, ...")
    parser.add_argument("--secondaries", type=int, default=1)
    parser.add_argument("--pooler", action="store_true", help="PgBouncer in front, too")
    args = parser.parse_args(argv[1:])
    if args.command in ("kill", "start") and not args.node:
        parser.error(f"{args.command} needs a node name (node1, node2, ...)")
    try:
        COMMANDS[args.command](formation(), args)
    except HaError as exc:
        print(f"ha: {exc}", file=sys.stderr)
        return 1
    return 0


def _up(ha: Formation, args: argparse.Namespace) -> None:
    require_tools()
    ha.up(args.secondaries)
    if args.pooler:
        ha.spawn_pooler()
    print(ha.url())


def _status(ha: Formation, _: argparse.Namespace) -> None:
    for state in ha.states():
        print(f"{state['name']}: {state['reported']} (assigned {state['assigned']})")


def _destroy(ha: Formation, _: argparse.Namespace) -> None:
    ha.down()
    shutil.rmtree(ha.base, ignore_errors=True)


COMMANDS: dict[str, Callable[[Formation, argparse.Namespace], None]] = {
    "up": _up,
    "status": _status,
    "url": lambda ha, _: print(ha.url()),
    "kill": lambda ha, args: ha.kill(ha.node(args.node)),
    "start": lambda ha, args: ha.start_node(ha.node(args.node)),
    "down": lambda ha, _: ha.down(),
    "destroy": _destroy,
    "pooler": lambda ha, _: follow_primary(ha),
}


if __name__ == "__main__":
    sys.exit(main(sys.argv))
