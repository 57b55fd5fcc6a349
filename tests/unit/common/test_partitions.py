"""Monthly partitions' arithmetic."""

from datetime import UTC, date, datetime

from services.common import partitions


def test_months_roll_over_the_year() -> None:
    assert partitions.month(datetime(2026, 11, 26, tzinfo=UTC), 3) == date(2027, 2, 1)
    assert partitions.month(datetime(2027, 1, 1, 3, tzinfo=UTC), -1) == date(2026, 12, 1)
    assert partitions.partition_name("outbox", date(2027, 2, 1)) == "outbox_2027_02"
