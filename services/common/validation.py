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
from dataclasses import dataclass
from typing import Any

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


def ascii_number(value: str, max_digits: int = 18) -> int | None:
    """`value` as a whole number when it is 1 to `max_digits` ASCII digits, else None. The one
    parser for numeric ids, page tokens and counts. Only "0" to "9": Python's notion of a
    digit also takes "²" (which `int` then refuses: an INTERNAL error) and "١٢" (which `int`
    reads as 12)."""
    if not 0 < len(value) <= max_digits or not all("0" <= ch <= "9" for ch in value):
        return None
    return int(value)


def text_problem(value: str, max_length: int, *, required: bool = True) -> str | None:
    """Why `value` is not free text the API stores, or None: required and absent, longer than
    `max_length`, or holding NUL characters (PostgreSQL text cannot hold them)."""
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
    if problem is None and value and value.strip() == "":
        return "must not be blank"
    return problem


class Checker:
    """Collects every problem of a request as field violations; `done()` raises them together,
    so a caller fixes them in one round. The one validation idiom of every service. `prefix`
    names where the checked message sits in the request ("rule", "events[3]")."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = f"{prefix}." if prefix else ""
        self.violations: list[FieldViolation] = []

    def fail(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(self.prefix + field, description))

    def require(self, ok: bool, field: str, description: str) -> bool:
        """Fail `field` unless `ok`; returns `ok`."""
        if not ok:
            self.fail(field, description)
        return ok

    def _problem(self, field: str, problem: str | None) -> None:
        if problem is not None:
            self.fail(field, problem)

    def identifier(self, field: str, value: str, max_length: int, *, required: bool = True) -> None:
        self._problem(field, identifier_problem(value, max_length, required=required))

    def text(self, field: str, value: str, max_length: int, *, required: bool = True) -> None:
        self._problem(field, text_problem(value, max_length, required=required))

    def user_id(self, value: str, field: str = "user_id") -> None:
        self.identifier(field, value, MAX_USER_ID)

    def request_id(self, value: str, field: str = "request_id") -> None:
        self.identifier(field, value, MAX_REQUEST_ID)

    def points(self, field: str, value: int, *, zero_allowed: bool = False) -> None:
        if value < 0 or (value == 0 and not zero_allowed):
            self.fail(field, "must be >= 0" if zero_allowed else "must be > 0")
        elif value > MAX_POINTS:
            self.fail(field, f"must be at most {MAX_POINTS}")

    def number(self, field: str, value: str, description: str) -> int:
        """`value` as an id number (`ascii_number`); 0 after failing `field`."""
        number = ascii_number(value)
        self.require(number is not None, field, description)
        return number or 0

    def done(self) -> None:
        if self.violations:
            raise InvalidArgument.fields(self.violations)


def require_user_id(user_id: str) -> None:
    checker = Checker()
    checker.user_id(user_id)
    checker.done()


# --- structural checks, run by the chassis on every request -----------------------------------


@dataclass(frozen=True)
class _Check:
    """What to check in one field: its kind, and the enum numbers it may hold."""

    kind: str  # "enum", "message" (may hold a timestamp or enum) or "map" (of those)
    numbers: frozenset[int] = frozenset()  # enums, and maps of enums
    enum: str = ""


_PLANS: dict[str, dict[int, _Check]] = {}


def _plan(descriptor: Any) -> dict[int, _Check]:  # a Descriptor (upb or pure Python)
    """Field number -> check, for the fields of this message type that can hold a timestamp or
    an enum, directly or nested (empty: nothing to check). Built once per message type."""
    plan = _PLANS.get(descriptor.full_name)
    if plan is None:
        plan = _PLANS[descriptor.full_name] = {}
        for f in descriptor.fields:
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                value = f.message_type.fields_by_name["value"]
                if value.enum_type is not None or _holds_checks(value.message_type):
                    plan[f.number] = _enum_check("map", value)
            elif f.enum_type is not None:
                plan[f.number] = _enum_check("enum", f)
            elif _holds_checks(f.message_type):
                plan[f.number] = _Check("message")
    return plan


def _enum_check(kind: str, field: FieldDescriptor) -> _Check:
    if field.enum_type is None:
        return _Check(kind)
    return _Check(kind, frozenset(field.enum_type.values_by_number), field.enum_type.name)


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


def _valid(message: Message) -> bool:
    """The fast path (no names, no generators): True when nothing needs reporting."""
    descriptor = message.DESCRIPTOR
    if descriptor.full_name == _TIMESTAMP:
        return _timestamp_problem(message) is None
    plan = _plan(descriptor)
    if not plan:
        return True
    for field, value in message.ListFields():  # only the fields that are set
        check = plan.get(field.number)
        if check is None:
            continue
        items = list(value.values()) if check.kind == "map" else value
        if check.numbers:
            many = check.kind == "map" or field.is_repeated
            if any(v not in check.numbers for v in items) if many else value not in check.numbers:
                return False
        elif check.kind == "map" or field.is_repeated:
            if not all(_valid(v) for v in items):
                return False
        elif not _valid(value):
            return False
    return True


def _walk(message: Message, prefix: str) -> Iterator[FieldViolation]:
    """The slow path, naming each field (only run when `_valid` found something)."""
    if message.DESCRIPTOR.full_name == _TIMESTAMP:
        problem = _timestamp_problem(message)
        if problem is not None:
            yield FieldViolation(prefix or "request", problem)
        return
    plan = _plan(message.DESCRIPTOR)
    for field, value in message.ListFields():
        check = plan.get(field.number)
        if check is None:
            continue
        name = f"{prefix}.{field.name}" if prefix else field.name
        if check.kind == "map":
            named = [(f"{name}[{key!r}]", item) for key, item in value.items()]
        elif field.is_repeated:
            named = [(f"{name}[{index}]", item) for index, item in enumerate(value)]
        else:
            named = [(name, value)]
        for item_name, item in named:
            if check.numbers and item not in check.numbers:
                yield FieldViolation(item_name, f"unknown {check.enum} value {item}")
            elif not check.numbers and isinstance(item, Message):
                yield from _walk(item, item_name)


def structural_violations(request: Message) -> list[FieldViolation]:
    """Out-of-range timestamps and unknown enum numbers anywhere in `request`."""
    return [] if _valid(request) else list(_walk(request, ""))


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
    if isinstance(request, Message) and not _valid(request):
        raise InvalidArgument.fields(list(_walk(request, "")))
