"""The echo server of bench/chassis_echo.py, as its own process: `bare` is grpc.aio alone (with
uvloop, as the services run); `chassis` is the same handler inside the services' chassis
(telemetry, RED metrics, error interceptor, request checks, health, reflection)."""

from __future__ import annotations

import sys
from typing import Any

import grpc
import uvloop
from grpc_health.v1 import health_pb2

from services.common import server

ECHO = "/points.bench.Echo/Echo"


def echo_handler() -> grpc.GenericRpcHandler:
    """One unary method whose messages are protobuf (health's), so that the chassis' request
    checks walk a real message."""

    async def echo(request: health_pb2.HealthCheckRequest, context: Any) -> Any:
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    method = grpc.unary_unary_rpc_method_handler(
        echo,
        request_deserializer=health_pb2.HealthCheckRequest.FromString,
        response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler("points.bench.Echo", {"Echo": method})


async def bare(port: int) -> None:
    grpc_server = grpc.aio.server()
    grpc_server.add_generic_rpc_handlers((echo_handler(),))
    grpc_server.add_insecure_port(f"127.0.0.1:{port}")
    await grpc_server.start()
    await grpc_server.wait_for_termination()


async def register(grpc_server: grpc.aio.Server, runtime: server.Runtime) -> None:
    grpc_server.add_generic_rpc_handlers((echo_handler(),))


def main(kind: str, port: int) -> None:
    if kind == "bare":
        uvloop.run(bare(port))
    else:  # ECHO_PORT and DATABASE_URL come from the environment, like a service's
        server.run(server.ServiceSpec("echo", ("points.bench.Echo",), register))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
