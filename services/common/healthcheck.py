"""A container healthcheck: exit 0 when a gRPC service (or an HTTP URL) reports healthy.

python -m services.common.healthcheck 127.0.0.1:50051
python -m services.common.healthcheck http://127.0.0.1:8080/healthz
python -m services.common.healthcheck     (the image's HEALTHCHECK: whichever process of the
                                           suite the container runs, read from PID 1)
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.catalog import GATEWAY, GATEWAY_MODULE, SERVICES
from services.common.settings import DEFAULT_PORTS


def is_healthy(target: str, timeout: float = 2.0) -> bool:
    if target.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(target, timeout=timeout) as response:
                return bool(response.status == 200)
        except OSError:
            return False
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


MODULES = {s.module: s.name for s in SERVICES} | {GATEWAY_MODULE: GATEWAY}


def container_target(process: Path = Path("/proc/1")) -> str | None:
    """Where the suite's process running as `process` (a container's PID 1) answers, from its
    command line and environment; None when it is not one of the suite's processes."""
    arguments = (process / "cmdline").read_bytes().split(b"\0")
    service = next((MODULES[a.decode()] for a in arguments if a.decode() in MODULES), None)
    if service is None:
        return None
    entries = (process / "environ").read_bytes().split(b"\0")
    environ = dict(e.decode().partition("=")[::2] for e in entries if b"=" in e)
    port = environ.get(f"{service.upper()}_PORT") or str(DEFAULT_PORTS[service])
    return f"http://127.0.0.1:{port}/healthz" if service == "gateway" else f"127.0.0.1:{port}"


if __name__ == "__main__":
    if len(sys.argv) > 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    target = sys.argv[1] if len(sys.argv) == 2 else container_target()
    if target is None:
        print("PID 1 is not a process of the Points suite", file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if is_healthy(target) else 1)
