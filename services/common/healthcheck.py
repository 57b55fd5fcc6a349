"""A container healthcheck: exit 0 when a gRPC service (or an HTTP URL) reports healthy.

python -m services.common.healthcheck 127.0.0.1:50051
python -m services.common.healthcheck http://127.0.0.1:8080/healthz
"""

from __future__ import annotations

import sys
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


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


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if is_healthy(sys.argv[1]) else 1)
