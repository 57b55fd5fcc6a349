"""A tiny service built on the chassis, used to test the chassis itself.

It has no protobuf contract: methods are registered as generic handlers on raw bytes, which
keeps the chassis tests independent of any real service. Run it as a process with
`python -m tests.support.echo_service` (settings from ECHO_* variables).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc

from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from services.common.server import Runtime, ServiceSpec, run

SERVICE = "points.test.v1.EchoService"


def _identity(data: bytes) -> bytes:
    return data


async def _register(server: grpc.aio.Server, runtime: Runtime) -> None:
    async def echo(request: bytes, context: Any) -> bytes:
        return request

    async def sleep(request: bytes, context: Any) -> bytes:
        await asyncio.sleep(float(request.decode()))
        return b"slept"

    async def fail(request: bytes, context: Any) -> bytes:
        kind = request.decode()
        if kind == "invalid":
            raise InvalidArgument.fields(
                [
                    FieldViolation("amount", "must be greater than 0"),
                    FieldViolation("user_id", "is required"),
                ]
            )
        if kind == "missing":
            raise NotFound("HOLD_NOT_FOUND", "no such hold", {"hold_id": "h-1"})
        if kind == "insufficient":
            raise FailedPrecondition("INSUFFICIENT_POINTS", "not enough", {"available": "5"})
        raise RuntimeError("secret internal detail")

    async def query(request: bytes, context: Any) -> bytes:
        async with runtime.pool.acquire() as conn:
            note_id = await conn.fetchval(
                "INSERT INTO notes (body) VALUES ($1) RETURNING id", request.decode()
            )
        return str(note_id).encode()

    behaviors = {"Echo": echo, "Sleep": sleep, "Fail": fail, "Query": query}
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            behavior, request_deserializer=_identity, response_serializer=_identity
        )
        for name, behavior in behaviors.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


SPEC = ServiceSpec(
    name="echo",
    service_names=(SERVICE,),
    register=_register,
    migrations_dir=Path(__file__).parent / "echo_migrations",
)


def call(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(
        f"/{SERVICE}/{method}", request_serializer=_identity, response_deserializer=_identity
    )


if __name__ == "__main__":
    run(SPEC)
