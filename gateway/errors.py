"""Errors as HTTP: one JSON shape, `{"error": {code, status, message, reason, details}}`.

gRPC statuses from the backends map to HTTP codes; a client's mistake is always a 4xx.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.errors import parse_rpc_error

log = logging.getLogger(__name__)

GRPC_TO_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
# Failed preconditions that are about the request's content rather than the resource's state.
UNPROCESSABLE_REASONS = {"INSUFFICIENT_POINTS", "AMOUNT_EXCEEDS_REVERSIBLE"}
HTTP_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    431: "HEADERS_TOO_LARGE",
    422: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    502: "BAD_GATEWAY",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


_STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def http_status(status: grpc.StatusCode, reason: str) -> int:
    """The HTTP code for a backend's gRPC status (anything unexpected: the backend failed)."""
    if status == grpc.StatusCode.FAILED_PRECONDITION and reason in UNPROCESSABLE_REASONS:
        return 422
    return GRPC_TO_HTTP.get(status, 502)


def http_code(status_number: int, reason: str) -> tuple[int, str]:
    """The HTTP code and gRPC status name for a numeric gRPC status (e.g. from a batch)."""
    status = _STATUS_BY_NUMBER.get(status_number, grpc.StatusCode.UNKNOWN)
    return http_status(status, reason), status.name


class HttpError(StarletteHTTPException):
    """A refusal with our reason. An HTTPException, so that FastAPI lets one raised while it
    reads the body (the edge's size limit) through to its handler."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}


def body(
    code: int, status: str, message: str, reason: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "status": status,
            "message": message,
            "reason": reason,
            "details": details or {},
        }
    }


def from_rpc_error(error: grpc.aio.AioRpcError) -> JSONResponse:
    rich = parse_rpc_error(error)
    code = http_status(rich.code, rich.reason)
    details: dict[str, Any] = dict(rich.metadata)
    if rich.violations:
        details["field_violations"] = [
            {"field": v.field, "description": v.description} for v in rich.violations
        ]
    if code == 502:
        message, reason = "a backend failed", rich.reason or "BACKEND_ERROR"
    else:
        message, reason = rich.message, rich.reason or rich.code.name
    return JSONResponse(body(code, rich.code.name, message, reason, details), status_code=code)


def install(app: FastAPI) -> None:
    @app.exception_handler(HttpError)
    async def http_error(_: Request, exc: HttpError) -> JSONResponse:
        status = HTTP_STATUS_NAMES.get(exc.code, "ERROR")
        headers = {"WWW-Authenticate": "Bearer"} if exc.code == 401 else None
        return JSONResponse(
            body(exc.code, status, exc.message, exc.reason, exc.details),
            status_code=exc.code,
            headers=headers,
        )

    @app.exception_handler(grpc.aio.AioRpcError)
    async def rpc_error(_: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        return from_rpc_error(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        violations = [
            {"field": ".".join(str(p) for p in e["loc"]), "description": e["msg"]}
            for e in exc.errors()
        ]
        return JSONResponse(
            body(
                400,
                "INVALID_ARGUMENT",
                "the request is invalid",
                "INVALID_ARGUMENT",
                {"field_violations": violations},
            ),
            status_code=400,
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(body(500, "INTERNAL", "internal error", "INTERNAL"), status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def http_exception(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = HTTP_STATUS_NAMES.get(exc.status_code, "ERROR")
        return JSONResponse(
            body(exc.status_code, status, str(exc.detail), status), status_code=exc.status_code
        )
