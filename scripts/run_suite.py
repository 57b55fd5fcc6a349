#!/usr/bin/env python3
"""`make run`: start the database (if needed) and every service that exists, until Ctrl-C.

Each service runs as its own process on its fixed default port. Ctrl-C (or SIGTERM) stops
them all gracefully, then the embedded database if this script started it, within 5 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scripts import devdb
from services.common.catalog import BY_NAME, GATEWAY, GATEWAY_MODULE, SERVICES
from services.common.healthcheck import is_healthy
from services.common.settings import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parent.parent
GRPC_SERVICES = tuple(s.name for s in SERVICES)
STOP_DEADLINE_SECONDS = 4.0


def existing_services() -> list[tuple[str, list[str]]]:
    found = [
        (name, [sys.executable, "-m", BY_NAME[name].module])
        for name in GRPC_SERVICES
        if (ROOT / "services" / name / "server.py").exists()
    ]
    if (ROOT / "gateway" / "main.py").exists():
        found.append((GATEWAY, [sys.executable, "-m", GATEWAY_MODULE]))
    return found


def port_of(name: str, env: dict[str, str]) -> int:
    """The fixed default port, unless overridden like the service itself allows (LEDGER_PORT)."""
    return int(env.get(f"{name.upper()}_PORT") or DEFAULT_PORTS[name])


def healthy(name: str, port: int) -> bool:
    target = f"http://127.0.0.1:{port}/healthz" if name == GATEWAY else f"127.0.0.1:{port}"
    return is_healthy(target, timeout=1.0)


def stop_all(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_DEADLINE_SECONDS
    for child in children.values():
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def wait_healthy(children: dict[str, subprocess.Popen[bytes]], ports: dict[str, int]) -> bool:
    """Wait up to 30 s for every child to answer its health check, printing where each one
    answers; False (said why) when one exits or the time runs out."""
    pending = set(children)
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            if children[name].poll() is not None:
                print(f"{name} exited with code {children[name].returncode}", flush=True)
                return False
            if healthy(name, ports[name]):
                pending.discard(name)
                kind = "http" if name == GATEWAY else "grpc"
                print(f"{name:<10} {kind}://127.0.0.1:{ports[name]}", flush=True)
        time.sleep(0.2)
    if pending:
        print(f"not healthy after 30 s: {', '.join(sorted(pending))}", flush=True)
    return not pending


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the suite the same way Ctrl-C does


def main() -> int:
    env = dict(os.environ)
    started_db = False
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = devdb.start()
        started_db = True
        print(f"database   {env['DATABASE_URL']} (embedded, data in {devdb.DATA})", flush=True)
    # Installed explicitly: a shell starting us in the background may have ignored SIGINT.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    ports = {name: port_of(name, env) for name in DEFAULT_PORTS}
    for name in GRPC_SERVICES:
        env.setdefault(f"{name.upper()}_ADDR", f"127.0.0.1:{ports[name]}")
    # On a developer's machine a webhook receiver is usually local: allow loopback endpoints.
    env.setdefault("WEBHOOKS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in existing_services():
            children[name] = subprocess.Popen(command, cwd=ROOT, env=env)
        if not wait_healthy(children, ports):
            return 1
        if GATEWAY in children:
            print(
                "token      .venv/bin/python -m gateway.token <user> [--scope admin]"
                "  (then: curl -H 'Authorization: Bearer <token>' "
                f"http://127.0.0.1:{ports[GATEWAY]}/v1/me/wallet)",
                flush=True,
            )
        print("all services up; Ctrl-C stops them", flush=True)
        while all(child.poll() is None for child in children.values()):
            time.sleep(0.5)
        print("a service exited; stopping the rest", flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop_all(children)
        if started_db:
            devdb.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
