from collections.abc import AsyncIterator

import grpc
import pytest

from services.common.errors import FieldViolation, parse_rpc_error
from services.common.server import ServiceHost
from tests.support import echo_service
from tests.support.hosts import running


@pytest.fixture(scope="module")
async def echo(database_url: str) -> AsyncIterator[ServiceHost]:
    async with running(echo_service.SPEC, database_url) as host:
        yield host


async def _fail(host: ServiceHost, kind: str) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await echo_service.call(channel, "Fail")(kind.encode())
    return caught.value


async def test_invalid_argument_carries_field_violations(echo: ServiceHost) -> None:
    error = parse_rpc_error(await _fail(echo, "invalid"))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_ARGUMENT"
    assert error.domain == "echo"
    assert list(error.violations) == [
        FieldViolation("amount", "must be greater than 0"),
        FieldViolation("user_id", "is required"),
    ]


@pytest.mark.parametrize(
    ("kind", "code", "reason", "metadata"),
    [
        ("missing", grpc.StatusCode.NOT_FOUND, "HOLD_NOT_FOUND", {"hold_id": "h-1"}),
        (
            "insufficient",
            grpc.StatusCode.FAILED_PRECONDITION,
            "INSUFFICIENT_POINTS",
            {"available": "5"},
        ),
    ],
)
async def test_domain_errors_map_to_status_and_error_info(
    echo: ServiceHost, kind: str, code: grpc.StatusCode, reason: str, metadata: dict[str, str]
) -> None:
    error = parse_rpc_error(await _fail(echo, kind))
    assert (error.code, error.reason, error.domain) == (code, reason, "echo")
    assert dict(error.metadata) == metadata
    assert not error.violations


async def test_unexpected_exception_is_internal_without_leaking(echo: ServiceHost) -> None:
    raw = await _fail(echo, "boom")
    error = parse_rpc_error(raw)
    assert error.code == grpc.StatusCode.INTERNAL
    assert error.reason == "INTERNAL"
    assert "secret" not in (raw.details() or "")


async def test_successful_call_and_migrations_applied(echo: ServiceHost) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{echo.port}") as channel:
        assert await echo_service.call(channel, "Echo")(b"hi") == b"hi"
        first = int(await echo_service.call(channel, "Query")(b"note"))
        second = int(await echo_service.call(channel, "Query")(b"note"))
    assert second == first + 1  # the table from echo_migrations/0001 exists and works
