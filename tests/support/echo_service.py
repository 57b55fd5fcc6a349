"""A tiny service built on the chassis, used to test the chassis itself.

It has no protobuf contract: methods are registered as generic handlers on raw bytes, which
keeps the chassis tests independent of any real service. Run it as a process with
`python -m tests.support.echo_service` (settings from ECHO_* variables).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
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

    # One method of each streaming kind, for what the chassis does with every kind of call.
    async def repeat(request: bytes, context: Any) -> AsyncIterator[bytes]:
        for _ in range(int(request.decode())):
            yield request

    async def join(requests: AsyncIterator[bytes], context: Any) -> bytes:
        return b"".join([part async for part in requests])

    async def chat(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for part in requests:
            yield part.upper()

    behaviors = {"Echo": echo, "Sleep": sleep, "Fail": fail, "Query": query}
    codec: dict[str, Any] = {"request_deserializer": _identity, "response_serializer": _identity}
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(behavior, **codec)
        for name, behavior in behaviors.items()
    }
    handlers["Repeat"] = grpc.unary_stream_rpc_method_handler(repeat, **codec)
    handlers["Join"] = grpc.stream_unary_rpc_method_handler(join, **codec)
    handlers["Chat"] = grpc.stream_stream_rpc_method_handler(chat, **codec)
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
