"""A real gRPC server in front of a real service that answers chosen methods with a chosen
refusal (or after a chosen delay, as a busy machine would) and forwards everything else: how a
peer's permanent refusals and slow answers are tested."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from services.common.errors import DomainError, to_grpc_status


def _raw(data: bytes) -> bytes:
    return data


class FaultyPeer(grpc.GenericRpcHandler):
    def __init__(self, target: str, domain: str) -> None:
        self.target = target
        self.domain = domain
        self.faults: dict[str, DomainError] = {}  # method name (e.g. "Hold") -> its refusal
        self.delays: dict[str, float] = {}  # method name -> seconds before it is forwarded
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = details.method

        async def unary(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            name = method.rsplit("/", 1)[1]
            await asyncio.sleep(self.delays.get(name, 0))
            fault = self.faults.get(name)
            if fault is not None:
                await context.abort_with_status(to_grpc_status(fault, self.domain))
            assert self._channel is not None
            forward: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = self._channel.unary_unary(
                method, request_serializer=_raw, response_deserializer=_raw
            )
            try:
                return await forward(request, timeout=10)
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "", exc.trailing_metadata())
                raise

        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=_raw, response_serializer=_raw
        )

    async def start(self) -> str:
        self._channel = grpc.aio.insecure_channel(self.target)
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((self,))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
        if self._channel is not None:
            await self._channel.close()
