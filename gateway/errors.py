"""Errors as HTTP: one shape for every 4xx and 5xx, RFC 9457 `application/problem+json`.

    {"type": "urn:points:problem:insufficient-points", "title": "Insufficient points",
     "status": 422, "detail": "...", "reason": "INSUFFICIENT_POINTS",
     "violations": [{"field": "...", "description": "..."}], "metadata": {...}}

`reason` is stable (listed in `REASONS`, and in the OpenAPI); `detail` is for people. gRPC
statuses from the backends map to HTTP codes; a client's mistake is always a 4xx.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.catalog import COMMON_REASONS, SERVICES
from services.common.errors import parse_rpc_error

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"

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
# Reasons about the request's content rather than the resource's state (IETF Idempotency-Key
# draft: a key reused with another body is 422).
UNPROCESSABLE_REASONS = {
    "INSUFFICIENT_POINTS",
    "AMOUNT_EXCEEDS_REVERSIBLE",
    "IDEMPOTENCY_KEY_REUSED",
}
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    431: "Request header fields too large",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}
# Reasons the gateway itself gives (the services' are in their protos' ErrorReason enums).
GATEWAY_REASONS = (
    "MISSING_TOKEN",
    "INVALID_TOKEN",
    "TOKEN_EXPIRED",
    "MISSING_SCOPE",
    "MISSING_ROLE",
    "IDENTITY_PROVIDER_UNAVAILABLE",
    "MISSING_IDEMPOTENCY_KEY",
    "HEADERS_TOO_LARGE",
    "BODY_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "BACKEND_ERROR",
)


def _proto_reasons() -> tuple[str, ...]:
    names = [*COMMON_REASONS, *(r for service in SERVICES for r in service.reasons)]
    return tuple(dict.fromkeys(names))


# Every reason a problem can carry: the OpenAPI enumerates these.
REASONS = tuple(dict.fromkeys((*_proto_reasons(), *GATEWAY_REASONS)))
_STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def http_status(status: grpc.StatusCode, reason: str) -> int:
    """The HTTP code for a backend's gRPC status (anything unexpected: the backend failed)."""
    if reason in UNPROCESSABLE_REASONS and status in (
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
    ):
        return 422
    return GRPC_TO_HTTP.get(status, 502)


class HttpError(StarletteHTTPException):
    """A refusal with our reason. An HTTPException, so that FastAPI lets one raised while it
    reads the body (the edge's size limit) through to its handler."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[Mapping[str, str]] = (),
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})
        self.violations = list(violations)


def problem(
    status: int,
    reason: str,
    detail: str,
    *,
    violations: Sequence[Mapping[str, str]] = (),
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The problem document (RFC 9457) for a refusal."""
    body: dict[str, Any] = {
        "type": f"urn:points:problem:{reason.lower().replace('_', '-')}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "reason": reason,
        "violations": list(violations),
        "metadata": dict(metadata or {}),
    }
    return body


def problem_response(
    status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    extra = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM, headers={**extra, **(headers or {})}
    )


def problem_of_status(
    code: int, reason: str, message: str, metadata: Mapping[str, str]
) -> dict[str, Any]:
    """The problem for a numeric gRPC status (one item of a batch)."""
    status = _STATUS_BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)
    http = http_status(status, reason)
    if http == 502:
        return problem(502, reason or "BACKEND_ERROR", "a backend failed")
    return problem(http, reason or status.name, message, metadata=metadata)


def from_rpc_error(error: grpc.aio.AioRpcError) -> JSONResponse:
    rich = parse_rpc_error(error)
    code = http_status(rich.code, rich.reason)
    if code == 502:
        return problem_response(502, problem(502, "BACKEND_ERROR", "a backend failed"))
    if not rich.reason:
        # Not a service's answer (each names a reason) but gRPC's own: a backend unreachable
        # or too slow. Its text names internal addresses, so it goes to the log, not the caller.
        log.warning("backend call failed", extra={"status": rich.code.name, "error": rich.message})
        detail = "a backend is unavailable or too slow; retry with the same Idempotency-Key"
        return problem_response(code, problem(code, rich.code.name, detail))
    violations = [{"field": v.field, "description": v.description} for v in rich.violations]
    body = problem(
        code,
        rich.reason or rich.code.name,
        rich.message,
        violations=violations,
        metadata=rich.metadata,
    )
    return problem_response(code, body)


# Patterns the routes use, in words: a person reading "should match pattern '^[a-z0-9]...'"
# must decode a regular expression.
PATTERN_WORDS = {
    r"^[a-z0-9][a-z0-9_.-]{0,57}$": (
        "use 1-58 lower-case letters, digits, '_', '.' or '-', starting with a letter or digit"
    ),
    r"^[0-9]{1,18}$": "use 1-18 digits",
}


def _described(error: Mapping[str, Any]) -> str:
    if error["type"] == "string_pattern_mismatch":
        words = PATTERN_WORDS.get(str((error.get("ctx") or {}).get("pattern", "")))
        if words:
            return words
    return str(error["msg"])


def install(app: FastAPI) -> None:
    @app.exception_handler(HttpError)
    async def http_error(_: Request, exc: HttpError) -> JSONResponse:
        body = problem(
            exc.code, exc.reason, exc.message, violations=exc.violations, metadata=exc.metadata
        )
        return problem_response(exc.code, body)

    @app.exception_handler(grpc.aio.AioRpcError)
    async def rpc_error(_: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        return from_rpc_error(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        violations = [
            {"field": ".".join(str(p) for p in e["loc"]), "description": _described(e)}
            for e in exc.errors()
        ]
        if any(tuple(e["loc"]) == ("header", "Idempotency-Key") for e in exc.errors()):
            reason = "MISSING_IDEMPOTENCY_KEY"
            detail = "mutating requests need an Idempotency-Key header (1-200 characters)"
        else:
            reason, detail = "INVALID_ARGUMENT", "the request is invalid"
        body = problem(400, reason, detail, violations=violations)
        return problem_response(400, body)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem_response(500, problem(500, "INTERNAL", "internal error"))

    @app.exception_handler(StarletteHTTPException)
    async def http_exception(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 415: "UNSUPPORTED_MEDIA_TYPE"}
        body = problem(
            exc.status_code, reason.get(exc.status_code, "INVALID_ARGUMENT"), str(exc.detail)
        )
        return problem_response(exc.status_code, body, exc.headers)
