"""Domain errors and their mapping to gRPC statuses with rich `google.rpc` details.

Handlers raise these; `ErrorInterceptor` turns them into a status carrying `ErrorInfo`
(stable UPPER_SNAKE_CASE reason, domain = service name, string metadata) and, for invalid
input, `BadRequest` field violations. Anything else becomes INTERNAL without leaking details.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from loyalty.common.v1 import common_pb2

log = logging.getLogger(__name__)

DETAILS_KEY = "grpc-status-details-bin"
# A downstream call failing with these means "try again later", not a bug.
DEPENDENCY_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# The database could not be reached or dropped the connection: transient, nothing applied
# that a retry with the same request id would apply twice.
DATABASE_DOWN = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,  # the connection broke mid-call
    asyncpg.OperatorInterventionError,  # terminated, shutting down, cannot connect now
    asyncpg.TooManyConnectionsError,
    # "not currently accepting connections", "lock not available", "object in use"
    asyncpg.ObjectNotInPrerequisiteStateError,
    # A pooled connection the server terminated while it sat idle fails its next statement
    # this way; the pool then replaces it.
    asyncpg.InternalClientError,
    # Failover: a connection still open to a node that was demoted, or no node taking writes
    # yet (a multi-host DATABASE_URL with target_session_attrs=read-write).
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.TargetServerAttributeNotMatched,
)


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass
class DomainError(Exception):
    """A request that cannot be served as asked; never retried by the caller unchanged."""

    reason: str
    message: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.FAILED_PRECONDITION

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"

    def as_message(self) -> common_pb2.Error:
        """This error as one item of a batch's answer (the batch itself succeeds)."""
        return common_pb2.Error(
            code=self.code.value[0],
            reason=self.reason,
            message=self.message,
            metadata=dict(self.metadata),
        )


@dataclass
class InvalidArgument(DomainError):
    violations: Sequence[FieldViolation] = ()
    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INVALID_ARGUMENT

    @classmethod
    def fields(cls, violations: Sequence[FieldViolation]) -> InvalidArgument:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        return cls("INVALID_ARGUMENT", summary, violations=violations)


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Aborted(DomainError):
    code = grpc.StatusCode.ABORTED


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE


class Translatable(Exception):
    """An exception that knows which domain error to answer with (e.g. a peer's refusal)."""

    def as_domain_error(self) -> DomainError:
        raise NotImplementedError


_BY_CODE: dict[grpc.StatusCode, type[DomainError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
}


def domain_error_for(code: grpc.StatusCode) -> type[DomainError]:
    """The error class answering with `code` (FAILED_PRECONDITION for anything unlisted)."""
    return _BY_CODE.get(code, FailedPrecondition)


class Internal(DomainError):
    """Only raised by the chassis for unexpected failures; the message stays generic."""

    code = grpc.StatusCode.INTERNAL


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_grpc_status(error: DomainError, domain: str) -> grpc.Status:
    details = [
        _pack(
            error_details_pb2.ErrorInfo(
                reason=error.reason, domain=domain, metadata=dict(error.metadata)
            )
        )
    ]
    if isinstance(error, InvalidArgument) and error.violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    status = status_pb2.Status(code=error.code.value[0], message=error.message, details=details)
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


@dataclass(frozen=True)
class RichError:
    """What a client can read back from a failed call (see `parse_rpc_error`)."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    violations: Sequence[FieldViolation] = ()


def parse_rpc_error(error: grpc.aio.AioRpcError) -> RichError:
    """Decode `google.rpc.Status` details from a failed call's trailing metadata."""
    code = error.code()
    message = error.details() or ""
    trailers: Any = error.trailing_metadata() or ()
    raw = next((value for key, value in trailers if key == DETAILS_KEY), None)
    if not isinstance(raw, bytes):
        return RichError(code, message)
    status = status_pb2.Status.FromString(raw)
    result = RichError(code, status.message)
    reason, domain, metadata, violations = "", "", {}, []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
    return RichError(result.code, result.message, reason, domain, metadata, violations)


def database_down(exc: BaseException) -> bool:
    """Whether `exc`, or what it was raised while handling, says the database went away
    (a closed connection also fails the transaction's exit with an InterfaceError)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, DATABASE_DOWN) or _closed_under(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _closed_under(exc: BaseException) -> bool:
    """asyncpg's refusal to use a connection the server closed: a transaction rolled back on
    purpose (a business refusal raised inside it) meets this first when the database went
    away mid-transaction, a failover for one."""
    return isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)


Behavior = Callable[[Any, Any], Any]  # (request, servicer context) -> response(s)


class Undecodable:
    """Stands in for a request grpcio could not parse (e.g. a string field that is not UTF-8)."""


UNDECODABLE = Undecodable()


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer that hands the handler a marker instead of failing inside grpcio, which
    would answer UNKNOWN or INTERNAL for what is the caller's mistake."""
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:
            return UNDECODABLE

    return parse


def answer_for(exc: Exception) -> DomainError:
    """The error a caller gets for what a handler raised (logged when it is not a plain
    business refusal)."""
    if isinstance(exc, Translatable):
        return exc.as_domain_error()
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, asyncpg.DataError):
        # A value the database cannot hold (NUL in text, a number out of range) that a
        # handler's checks missed: still the caller's input, never INTERNAL. Logged in full
        # so the missing check gets written.
        log.warning("input refused by the database", exc_info=exc)
        return InvalidArgument.fields(
            [FieldViolation("request", "holds a value that cannot be stored")]
        )
    if database_down(exc):
        log.warning("the database is unavailable", extra={"error": repr(exc)})
        return Unavailable(
            "DATABASE_UNAVAILABLE", "the database is unavailable; retry with the same request id"
        )
    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() in DEPENDENCY_DOWN:
        log.warning("a dependency is unavailable", extra={"status": exc.code().name})
        return Unavailable(
            "DEPENDENCY_UNAVAILABLE",
            "a service this call needs is unavailable; retry with the same request id",
        )
    log.exception("unhandled error in handler", exc_info=exc)
    return Internal("INTERNAL", "internal error")


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps exceptions raised by handlers to statuses; refuses calls until the service is ready;
    refuses malformed requests (undecodable, timestamps or enums out of range) before handlers."""

    def __init__(
        self,
        domain: str,
        is_ready: Callable[[], bool],
        check_request: Callable[[Any], None] = lambda request: None,
    ) -> None:
        self._domain = domain
        self._is_ready = is_ready
        self._check_request = check_request  # raises InvalidArgument before the handler runs

    async def _fail(self, context: grpc.aio.ServicerContext[Any, Any], exc: Exception) -> None:
        await context.abort_with_status(to_grpc_status(answer_for(exc), self._domain))

    async def _refuse_if_not_ready(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if not self._is_ready():
            await context.abort_with_status(
                to_grpc_status(
                    Unavailable("NOT_READY", "service is starting or draining"), self._domain
                )
            )

    def _wrap_unary(self, behavior: Behavior) -> Behavior:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await self._refuse_if_not_ready(context)
            try:
                self._check_request(request)
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(context, exc)

        return wrapped

    def _wrap_stream(self, behavior: Behavior) -> Behavior:
        async def wrapped(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await self._refuse_if_not_ready(context)
            try:
                self._check_request(request)
                async for response in behavior(request, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(context, exc)

        return wrapped

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(("/grpc.health.", "/grpc.reflection.")):
            return handler
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler
