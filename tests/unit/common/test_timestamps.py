from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp

from services.common.timestamps import from_timestamp, to_timestamp


def test_round_trip_matches_protobuf_conversion() -> None:
    for value in (
        datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2027, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=8))),
    ):
        expected = Timestamp()
        expected.FromDatetime(value)
        assert to_timestamp(value) == expected
        assert from_timestamp(expected) == value


def test_none_stays_unset() -> None:
    assert to_timestamp(None) is None
