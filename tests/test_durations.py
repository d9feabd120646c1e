"""The one duration parser (explicit bare unit) and formatter, and the one redaction module."""

from __future__ import annotations

import doctest

import pytest

from pooldoctor import durations, redact
from pooldoctor.durations import BadDuration, parse_duration


def test_doctests() -> None:
    for module in (durations, redact):
        assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize(
    ("text", "bare_unit", "seconds"),
    [("30000", "ms", 30.0), ("30", "s", 30.0), ("30m", None, 1800.0), ("30min", None, 1800.0),
     ("2h", None, 7200.0), ("1d", "ms", 86400.0), ("250ms", "s", 0.25), ("5 MIN", "s", 300.0)],
)  # fmt: skip
def test_the_bare_unit_applies_only_to_bare_numbers(
    text: str, bare_unit: str | None, seconds: float
) -> None:
    assert parse_duration(text, bare_unit=bare_unit) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["30", "2026-11-21", "abc", "-5s", "10 parsecs"])
def test_a_bare_number_needs_a_unit_when_none_is_given(text: str) -> None:
    with pytest.raises(BadDuration):
        parse_duration(text, bare_unit=None)


def test_redact_covers_urls_dsns_and_keyword_pairs() -> None:
    text = redact.redact(
        "GET https://app/pool-status?token=abc123&verbose=1 from postgresql://u:hunter2@db/app "
        "with password=s3cret"
    )
    assert "abc123" not in text and "hunter2" not in text and "s3cret" not in text
    assert "verbose=1" in text
