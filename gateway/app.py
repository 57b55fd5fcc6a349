"""The gateway's ASGI application: authenticated HTTP/JSON over the gRPC services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation

from gateway import console, errors, examples, oidc, roles
from gateway.audit import AuditTrail
from gateway.auth import Authenticator
from gateway.backends import Backends
from gateway.limits import EdgeGuard
from gateway.models import Problem, Readiness
from gateway.routes import (
    admin,
    approvals,
    checkout,
    coupons,
    dead_letters,
    events,
    experiments,
    mall,
    me,
    members,
    webhooks,
)
from gateway.settings import GatewaySettings
from gateway.wallet_parts import WalletParts

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (400, 401, 403, 404, 409, 413, 422, 429, 431, 503, 504)
}


PUBLIC = ("/healthz", "/readyz")
ROUTES = (
    me,
    mall,
    checkout,
    coupons,
    events,
    admin,
    experiments,
    members,
    dead_letters,
    webhooks,
    approvals,
)


def _document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, declaring the bearer token every route but the probes needs."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            license_info=app.license_info,
            servers=app.servers,
            routes=app.routes,
        )
        document["components"]["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "`sub` is the member; scopes `admin` and `events:write`",
            }
        }
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                operation["security"] = [] if path in PUBLIC else [{"bearer": []}]
                if path.startswith("/v1/admin/"):
                    allowed = sorted(roles.ALLOWED[roles.need(method.upper(), path)])
                    operation["x-roles"] = allowed
                    operation["description"] = (
                        f"{operation.get('description', '')}\n\nRoles: {', '.join(allowed)}."
                    ).lstrip()
        examples.annotate(document)
        app.openapi_schema = document
    return app.openapi_schema


def create_app(settings: GatewaySettings) -> FastAPI:
    services = Backends(
        settings.backends,
        settings.backend_timeout_seconds,
        settings.admin_timeout_seconds,
        WalletParts(settings.wallet_parts_seconds),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        services.open()
        yield
        await services.close()

    app = FastAPI(
        title="Points gateway",
        summary="The HTTP/JSON API of Points, an open-source loyalty-points platform.",
        version=settings.telemetry.version,
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
        servers=[{"url": "/", "description": "the gateway serving this document"}],
    )
    app.state.backends = services
    authenticator = Authenticator(settings.auth, settings.oidc)
    app.state.authenticator = authenticator
    app.state.sse_keepalive_seconds = settings.sse_keepalive_seconds
    errors.install(app)
    console.install(app)
    oidc.install(app, settings)
    for module in ROUTES:
        app.include_router(module.router)

    async def backend_status(name: str) -> str:
        stub = health_pb2_grpc.HealthStub(services.channels[name])
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=services.timeout)
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=Readiness)
    async def readyz() -> Readiness:
        """Readiness of this gateway: it answers 200 whenever it can serve, backends or not,
        because every route degrades or fails cleanly on its own when a backend is down (taking
        every gateway out of a load balancer at once would turn a partial outage into a full
        one). The backends' health is reported for operators."""
        names = sorted(services.channels)
        # Probes are not traced (the route is excluded below), nor are their health checks:
        # a load balancer polling /readyz would otherwise export three orphan traces a call.
        with suppress_instrumentation():
            answers = await asyncio.gather(*map(backend_status, names))
        statuses = dict(zip(names, answers, strict=True))
        degraded = sorted(name for name, status in statuses.items() if status != "SERVING")
        return Readiness(status="ready", backends=statuses, degraded=degraded)

    app.openapi = lambda: _document(app)  # type: ignore[method-assign]
    # Inside the edge: operators' changes are recorded in the audit log before they answer.
    app.add_middleware(AuditTrail, backends=services)
    # Outermost: limits and authentication before anything reads the request.
    app.add_middleware(EdgeGuard, limits=settings.limits, authenticator=authenticator)
    # Server spans for every request, continuing a caller's `traceparent`, and the
    # http.server.request.duration histogram per route and status (stable HTTP conventions).
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz")
    return app
