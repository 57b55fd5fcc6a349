"""Every RPC of every service, fed generated requests: a caller's mistake is never INTERNAL.

Requests are built from the protobuf descriptors (Hypothesis): extreme integers, unknown enum
numbers, out-of-range timestamps, empty, odd and oversized strings, and raw bytes that are not
valid UTF-8 where a string is expected. The services run against a database of their own, so
whatever the fuzzer configures (rules, blacklists, items) cannot leak into other tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty.ledger.v1 import ledger_pb2
from loyalty.mall.v1 import mall_pb2
from loyalty.rules.v1 import rules_pb2
from loyalty.webhooks.v1 import webhooks_pb2
from services.common.paging import encode_token
from services.common.server import ServiceHost
from services.ledger.server import SPEC as LEDGER
from services.mall.server import SPEC as MALL
from services.rules.server import SPEC as RULES
from services.webhooks.server import SPEC as WEBHOOKS
from tests.support.databases import fresh_database
from tests.support.hosts import health_status, running

FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
SERVICES = {
    "ledger": ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"],
    "rules": rules_pb2.DESCRIPTOR.services_by_name["RulesService"],
    "mall": mall_pb2.DESCRIPTOR.services_by_name["MallService"],
    "webhooks": webhooks_pb2.DESCRIPTOR.services_by_name["WebhooksService"],
}
METHODS = [
    pytest.param(name, method, id=f"{name}.{method.name}")
    for name, service in SERVICES.items()
    for method in service.methods
]

_INT_EDGES = {
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
}
_ODD_TEXT = [
    "",
    "u-fuzz",
    "1",
    "0",
    "-1",
    "a\x00b",
    "\x00",
    "\u202eevil",
    "x" * 5000,
    "😀",
    " ",
    "a\nb",
]


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [low, high, 0, 1, -1, 10**12, 10**12 + 1, 10**13, 2**53]
    return st.one_of(
        st.sampled_from([e for e in edges if low <= e <= high]), st.integers(low, high)
    )


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.enum_type is not None:
        return st.one_of(st.sampled_from(list(field.enum_type.values_by_number)), _integers(-5, 99))
    if field.type in _INT_EDGES:
        return _integers(*_INT_EDGES[field.type])
    if field.type == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.sampled_from(_ODD_TEXT), st.text(max_size=30))
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=40)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    return st.floats()


def _message(descriptor: Descriptor, depth: int) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(descriptor)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return st.builds(
            cls, seconds=_integers(-(2**63), 2**63 - 1), nanos=_integers(-(2**31), 2**31 - 1)
        )
    if depth > 3:
        return st.just(cls())
    values: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key = _scalar(field.message_type.fields_by_name["key"])
            value_field = field.message_type.fields_by_name["value"]
            item = (
                _message(value_field.message_type, depth + 1)
                if value_field.message_type is not None
                else _scalar(value_field)
            )
            values[field.name] = st.dictionaries(key, item, max_size=3)
            continue
        one = (
            _message(field.message_type, depth + 1)
            if field.message_type is not None
            else _scalar(field)
        )
        if field.is_repeated:
            values[field.name] = st.lists(one, max_size=3)
        else:
            values[field.name] = st.one_of(st.none(), one)
    return st.fixed_dictionaries(values).map(lambda fields: _build(cls, fields))


def _build(cls: Callable[[], Message], fields: dict[str, Any]) -> Message:
    message = cls()
    for name, value in fields.items():
        if value is None:
            continue
        target = getattr(message, name)
        if isinstance(value, Message):
            target.CopyFrom(value)
        elif isinstance(value, list):
            for item in value:
                target.add().CopyFrom(item) if isinstance(item, Message) else target.append(item)
        elif isinstance(value, dict):
            for key, item in value.items():
                target[key].CopyFrom(item) if isinstance(item, Message) else target.update(
                    {key: item}
                )
        else:
            setattr(message, name, value)
    return message


def _invalid_utf8(descriptor: Descriptor) -> bytes | None:
    """A request whose first string field holds bytes that are not UTF-8 (raw wire format)."""
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
            return bytes([(field.number << 3) | 2, 3]) + b"\xff\xfe\xc3"
    return None


@pytest.fixture(scope="module")
async def suite(server_url: str) -> AsyncIterator[dict[str, ServiceHost]]:
    async with fresh_database(server_url, "points_fuzz") as url:
        async with running(LEDGER, url) as ledger:
            peers = {"LEDGER_ADDR": f"127.0.0.1:{ledger.port}"}
            async with running(RULES, url, peers) as rules:
                peers["RULES_ADDR"] = f"127.0.0.1:{rules.port}"
                async with running(MALL, url, peers) as mall, running(WEBHOOKS, url) as webhooks:
                    yield {"ledger": ledger, "rules": rules, "mall": mall, "webhooks": webhooks}


def _raw(data: bytes) -> bytes:
    return data


async def _call(host: ServiceHost, method: MethodDescriptor, payload: bytes) -> grpc.StatusCode:
    path = f"/{method.containing_service.full_name}/{method.name}"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        try:
            if method.server_streaming:
                stream: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
                    path, request_serializer=_raw, response_deserializer=_raw
                )
                call = stream(payload, timeout=2)
                async for _ in call:
                    break  # the first message proves the call was accepted
                call.cancel()
            else:
                unary: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                    path, request_serializer=_raw, response_deserializer=_raw
                )
                await unary(payload, timeout=20)
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(("service", "method"), METHODS)
async def test_no_rpc_answers_internal_for_any_input(
    suite: dict[str, ServiceHost], service: str, method: MethodDescriptor
) -> None:
    host = suite[service]

    @settings(
        max_examples=50,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(_message(method.input_type, 0))
    def collect(request: Message) -> None:
        requests.append(request)

    # Hypothesis draws the requests (it cannot drive a coroutine itself); each is then sent.
    requests: list[Message] = []
    collect()
    for request in requests:
        code = await _call(host, method, request.SerializeToString())
        assert code not in FORBIDDEN, (method.full_name, request)
    raw = _invalid_utf8(method.input_type)
    if raw is not None:
        code = await _call(host, method, raw)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, method.full_name
    address = f"127.0.0.1:{host.port}"
    assert await health_status(address) == health_pb2.HealthCheckResponse.SERVING


# Characters str.isdigit() accepts that are not ASCII digits: superscripts, other scripts'
# digits, fullwidth forms. A numeric id or a page token made of them must be a clear refusal.
UNICODE_DIGITS = st.characters(categories=["Nd", "No"], exclude_characters="0123456789").filter(
    str.isdigit
)
TAKES_NUMBERS = [
    pytest.param(name, method, field.name, id=f"{name}.{method.name}.{field.name}")
    for name, service in SERVICES.items()
    for method in service.methods
    for field in method.input_type.fields
    if field.type == FieldDescriptor.TYPE_STRING
    and (field.name == "page_token" or field.name.endswith("_id"))
]


@pytest.mark.parametrize(("service", "method", "field"), TAKES_NUMBERS)
async def test_unicode_digits_in_an_id_or_a_page_token_are_refused_clearly(
    suite: dict[str, ServiceHost], service: str, method: MethodDescriptor, field: str
) -> None:
    """As the id itself, and inside a well-formed token (every List RPC's tokens hold numbers
    or times); ASCII digits around them too."""
    values: list[str] = []

    @settings(max_examples=8, deadline=None, derandomize=True, database=None)
    @given(st.text(UNICODE_DIGITS, min_size=1, max_size=3), st.sampled_from(["", "1", "12"]))
    def collect(digits: str, ascii_part: str) -> None:
        values.append(ascii_part + digits)

    collect()
    cls = message_factory.GetMessageClass(method.input_type)
    for value in values:
        for sent in (value, encode_token(value), encode_token(value, value, value)):
            request = cls(**{field: sent})
            code = await _call(suite[service], method, request.SerializeToString())
            assert code not in FORBIDDEN, (method.full_name, field, sent)
