"""Conversions between google.protobuf.Timestamp and aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

from google.protobuf.timestamp_pb2 import Timestamp


@overload
def to_timestamp(value: datetime) -> Timestamp: ...
@overload
def to_timestamp(value: None) -> None: ...
def to_timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    # Faster than Timestamp.FromDatetime (pure Python); `value` must be timezone-aware.
    whole = value.replace(microsecond=0).timestamp()
    return Timestamp(seconds=int(whole), nanos=value.microsecond * 1000)


def from_timestamp(value: Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)


def rfc3339(value: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC, e.g. 2026-11-26T08:00:00.123456Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
