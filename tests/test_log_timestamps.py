"""Timestamp recognition: every supported format, zones, naive times in --log-tz, syslog years."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from pooldoctor.collect.logs.timestamps import TimestampReader

REFERENCE = datetime(2025, 1, 10, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, *clock: int) -> datetime:
    hour, minute, second, micros = (*clock, 0, 0, 0, 0)[:4]
    return datetime(year, month, day, hour, minute, second, micros, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "moment", "flavor"),
    [
        (b"2024-12-05T09:30:01.123Z INFO app: hi", utc(2024, 12, 5, 9, 30, 1, 123000), "python"),
        (b"2024-12-05 09:30:01+02:00 INFO x", utc(2024, 12, 5, 7, 30, 1), "python"),
        (b"2024-12-05T09:30:01.123456789-0500 x", utc(2024, 12, 5, 14, 30, 1, 123456), "unknown"),
        (b"2024-12-05 09:30:01,123 ERROR app: x", utc(2024, 12, 5, 9, 30, 1, 123000), "python"),
        (b"[2024-12-05 09:30:01 +0100] [42] [ERROR] x", utc(2024, 12, 5, 8, 30, 1), "gunicorn"),
        (b"2024-12-05 09:30:01.123 UTC [42] LOG:  x", utc(2024, 12, 5, 9, 30, 1, 123000),
         "postgresql"),
        (b"2024-12-05 09:30:01 UTC [42] app@db ERROR:  x", utc(2024, 12, 5, 9, 30, 1),
         "postgresql"),
        (b"2024-12-05 09:30:01 CET [42] LOG:  x", utc(2024, 12, 5, 8, 30, 1), "postgresql"),
        (b"2024-12-05 09:30:01.5 EST [42] LOG:  x", utc(2024, 12, 5, 14, 30, 1, 500000),
         "postgresql"),
        (b"2024-12-05 09:30:01 +03 [42] LOG:  x", utc(2024, 12, 5, 6, 30, 1), "postgresql"),
        (b'10.0.0.1 - - [05/Dec/2024:09:30:01 +0000] "GET / HTTP/1.1" 200 1',
         utc(2024, 12, 5, 9, 30, 1), "access"),
        (b'{"ts": "2024-12-05T09:30:01Z", "msg": "x"}', utc(2024, 12, 5, 9, 30, 1), "json"),
        (b'{"time": 1733391001, "msg": "x"}', utc(2024, 12, 5, 9, 30, 1), "json"),
        (b'{"timestamp": 1733391001250}', utc(2024, 12, 5, 9, 30, 1, 250000), "json"),
        (b'{"@timestamp": "2024-12-05T10:30:01+01:00"}', utc(2024, 12, 5, 9, 30, 1), "json"),
        (b"Dec  5 09:30:01 db1 postgres[1]: x", utc(2024, 12, 5, 9, 30, 1), "syslog"),
    ],
)  # fmt: skip
def test_formats(line: bytes, moment: datetime, flavor: str) -> None:
    stamp = TimestampReader(UTC, REFERENCE).read(line)
    assert stamp is not None
    assert stamp.moment == moment
    assert stamp.moment.tzinfo == UTC
    assert stamp.flavor == flavor


@pytest.mark.parametrize(
    "line",
    [b"", b"  File \"x.py\", line 1", b"Traceback (most recent call last):", b"\tSELECT 1",
     b"hello world", b"2024-13-45 99:99:99 nonsense", b'{"msg": "no time"}'],
)  # fmt: skip
def test_lines_without_timestamps(line: bytes) -> None:
    assert TimestampReader(UTC, REFERENCE).read(line) is None


def test_naive_timestamps_are_in_log_tz() -> None:
    reader = TimestampReader(BERLIN, REFERENCE)
    winter = reader.read(b"2024-12-05 09:30:01,000 INFO x")
    summer = reader.read(b"2024-07-05 09:30:01,000 INFO x")
    assert winter is not None and winter.moment == utc(2024, 12, 5, 8, 30, 1)
    assert summer is not None and summer.moment == utc(2024, 7, 5, 7, 30, 1)
    fixed = TimestampReader(timezone(timedelta(hours=-5)), REFERENCE)
    stamp = fixed.read(b"Dec  5 09:30:01 host app: x")
    assert stamp is not None and stamp.moment == utc(2024, 12, 5, 14, 30, 1)


def test_ambiguous_zone_abbreviation_uses_log_tz_and_is_reported() -> None:
    reader = TimestampReader(UTC, REFERENCE)
    stamp = reader.read(b"2024-12-05 09:30:01 CST [42] LOG:  x")
    assert stamp is not None and stamp.moment == utc(2024, 12, 5, 9, 30, 1)
    assert reader.ambiguous_zones == {"CST"}


def test_syslog_year_is_the_latest_not_after_the_reference() -> None:
    line = b"Dec  5 09:30:01 host app: x"
    assert TimestampReader(UTC, utc(2025, 1, 10)).read(line).moment.year == 2024  # type: ignore[union-attr]
    assert TimestampReader(UTC, utc(2024, 12, 6)).read(line).moment.year == 2024  # type: ignore[union-attr]
    assert TimestampReader(UTC, utc(2024, 12, 5, 9)).read(line).moment.year == 2023  # type: ignore[union-attr]
    leap = TimestampReader(UTC, utc(2025, 3, 1)).read(b"Feb 29 10:00:00 h a: x")
    assert leap is not None and leap.moment == utc(2024, 2, 29, 10)
