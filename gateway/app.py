"""The gateway's ASGI application: liveness and readiness so far (the API comes with issue 7)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.settings import GatewaySettings


def create_app(settings: GatewaySettings) -> FastAPI:
    channels: dict[str, grpc.aio.Channel] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for name, address in settings.backends.items():
            channels[name] = grpc.aio.insecure_channel(address)
        yield
        await asyncio.gather(*(channel.close() for channel in channels.values()))

    app = FastAPI(title="Points gateway", version=settings.telemetry.version, lifespan=lifespan)

    async def backend_status(name: str) -> str:
        stub = health_pb2_grpc.HealthStub(channels[name])
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(), timeout=settings.backend_timeout_seconds
            )
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: every backend reports SERVING on the gRPC health service."""
        names = sorted(channels)
        statuses = dict(zip(names, await asyncio.gather(*map(backend_status, names)), strict=True))
        ready = all(status == "SERVING" for status in statuses.values())
        body = {"status": "ready" if ready else "not_ready", "backends": statuses}
        return JSONResponse(body, status_code=200 if ready else 503)

    return app
