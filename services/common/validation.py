"""Input checks every service shares: one home for what "well-formed" means.

Two layers:
- `structural_violations(request)` runs in the chassis on every request before any handler
  (see `errors.ErrorInterceptor`): timestamps inside years 1–9999 with nanos in range, and enum
  fields holding a declared number (proto3 enums are open: an unknown number decodes fine and
  would otherwise reach the database). No handler sees a request that fails these.
- The helpers below for what only the handler knows: required text, identifiers (no control or
  bidirectional-formatting characters, which spoof what an operator reads), bounded amounts.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from functools import cache

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.common.errors import UNDECODABLE, FieldViolation, InvalidArgument

MAX_USER_ID = 128
MAX_REQUEST_ID = 256
# One operation never moves more points than this (the ledger's cap): catches unit mistakes,
# and everything configured to be credited later (prizes, awards) is checked against it too.
MAX_POINTS = 10**12
MAX_MONEY_MINOR = 10**15

# google.protobuf.Timestamp's documented range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_SECONDS = -62_135_596_800
MAX_SECONDS = 253_402_300_799
_TIMESTAMP = "google.protobuf.Timestamp"


def storable(value: str, max_length: int, *, required: bool = True) -> bool:
    """Text the API accepts: present (when required), at most `max_length` characters, and no
    NUL characters (PostgreSQL text cannot hold them)."""
    return (bool(value) or not required) and len(value) <= max_length and "\x00" not in value


def text_problem(value: str, max_length: int, *, required: bool = True) -> str | None:
    """Why `value` is not storable free text, or None."""
    if not value:
        return "is required" if required else None
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    if "\x00" in value:
        return "must not contain NUL characters"
    return None


def identifier_problem(value: str, max_length: int, *, required: bool = True) -> str | None:
    """Why `value` is not an identifier (user, order or request id), or None. Identifiers are
    compared and displayed: control and formatting characters (Unicode Cc and Cf, which include
    the bidirectional overrides like U+202E) are refused."""
    problem = text_problem(value, max_length, required=required)
    if problem is None and any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        return "must not contain control or formatting characters"
    return problem


def check_identifier(
    bad: list[FieldViolation], field: str, value: str, max_length: int, *, required: bool = True
) -> None:
    problem = identifier_problem(value, max_length, required=required)
    if problem is not None:
        bad.append(FieldViolation(field, problem))


def check_text(
    bad: list[FieldViolation], field: str, value: str, max_length: int, *, required: bool = True
) -> None:
    problem = text_problem(value, max_length, required=required)
    if problem is not None:
        bad.append(FieldViolation(field, problem))


def check_user_id(bad: list[FieldViolation], value: str, field: str = "user_id") -> None:
    check_identifier(bad, field, value, MAX_USER_ID)


def check_request_id(bad: list[FieldViolation], value: str, field: str = "request_id") -> None:
    check_identifier(bad, field, value, MAX_REQUEST_ID)


def check_points(
    bad: list[FieldViolation], field: str, value: int, *, zero_allowed: bool = False
) -> None:
    if value < 0 or (value == 0 and not zero_allowed):
        bad.append(FieldViolation(field, "must be >= 0" if zero_allowed else "must be > 0"))
    elif value > MAX_POINTS:
        bad.append(FieldViolation(field, f"must be at most {MAX_POINTS}"))


def require_user_id(user_id: str) -> None:
    bad: list[FieldViolation] = []
    check_user_id(bad, user_id)
    raise_if(bad)


def raise_if(bad: list[FieldViolation]) -> None:
    if bad:
        raise InvalidArgument.fields(bad)


# --- structural checks, run by the chassis on every request -----------------------------------


@cache
def _interesting(descriptor: Descriptor) -> tuple[FieldDescriptor, ...]:
    """Fields of this message type that can hold a timestamp or an enum, directly or nested."""
    return tuple(
        f for f in descriptor.fields if f.enum_type is not None or _holds_checks(f.message_type)
    )


def _holds_checks(descriptor: Descriptor | None, seen: frozenset[str] = frozenset()) -> bool:
    if descriptor is None or descriptor.full_name in seen:
        return False
    if descriptor.full_name == _TIMESTAMP:
        return True
    inner = seen | {descriptor.full_name}
    return any(
        f.enum_type is not None or _holds_checks(f.message_type, inner) for f in descriptor.fields
    )


def _timestamp_problem(value: Message) -> str | None:
    seconds: int = value.seconds  # type: ignore[attr-defined]
    nanos: int = value.nanos  # type: ignore[attr-defined]
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        return "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z"
    if not 0 <= nanos <= 999_999_999:
        return "nanos must be between 0 and 999999999"
    return None


def _walk(message: Message, prefix: str) -> Iterator[FieldViolation]:
    if message.DESCRIPTOR.full_name == _TIMESTAMP:
        problem = _timestamp_problem(message)
        if problem is not None:
            yield FieldViolation(prefix or "request", problem)
        return
    for field in _interesting(message.DESCRIPTOR):
        name = f"{prefix}.{field.name}" if prefix else field.name
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entry_value = field.message_type.fields_by_name["value"]
            if entry_value.message_type is not None:
                for key, item in value.items():
                    yield from _walk(item, f"{name}[{key!r}]")
            continue
        if field.is_repeated:
            for index, item in enumerate(value):
                yield from _one(field, item, f"{name}[{index}]")
        elif field.message_type is None or message.HasField(field.name):
            yield from _one(field, value, name)


def _one(field: FieldDescriptor, value: object, name: str) -> Iterator[FieldViolation]:
    if field.enum_type is not None:
        if value not in field.enum_type.values_by_number:
            yield FieldViolation(name, f"unknown {field.enum_type.name} value {value}")
    elif isinstance(value, Message):
        yield from _walk(value, name)


def structural_violations(request: Message) -> list[FieldViolation]:
    """Out-of-range timestamps and unknown enum numbers anywhere in `request`."""
    return list(_walk(request, ""))


def check_request(request: object) -> None:
    """The chassis' checks before any handler: decodable, timestamps and enums in range."""
    if request is UNDECODABLE:
        raise InvalidArgument.fields(
            [
                FieldViolation(
                    "request", "is not a valid message (e.g. a string field that is not UTF-8)"
                )
            ]
        )
    if isinstance(request, Message):
        raise_if(structural_violations(request))
