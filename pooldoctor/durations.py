"""Durations: the one parser (with an explicit unit for bare numbers) and the one formatter."""

from __future__ import annotations

import re

UNIT_SECONDS = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_BARE_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds"}
_DURATION = re.compile(r"(?i)^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]+)?\s*$")


class BadDuration(ValueError):
    """Text that is not a duration; the message says what was expected."""


def parse_duration(text: str, *, bare_unit: str | None) -> float:
    """Seconds from `30s`, `500ms`, `5min`/`5m`, `2h`, `1d`, `.5`; a bare number is in `bare_unit`.

    `bare_unit=None` refuses bare numbers (for ages typed by a person, where `30` is ambiguous).

    >>> parse_duration("5min", bare_unit="ms"), parse_duration("30000", bare_unit="ms")
    (300.0, 30.0)
    >>> parse_duration("10", bare_unit="s")
    10.0
    """
    match = _DURATION.match(text)
    unit = (match.group(2) or bare_unit or "").lower() if match else ""
    if match is None or unit not in UNIT_SECONDS:
        bare = f"{_BARE_UNIT_NAMES.get(bare_unit, bare_unit)}, or " if bare_unit else ""
        raise BadDuration(f"is not a duration ({bare}a number with ms/s/min/h/d)")
    return float(match.group(1)) * UNIT_SECONDS[unit]


def server_setting_seconds(text: str | None) -> float | None:
    """A PostgreSQL time setting in seconds (bare numbers are milliseconds), None if unreadable."""
    if text is None:
        return None
    try:
        return parse_duration(text, bare_unit="ms")
    except BadDuration:
        return None


def format_duration(seconds: float) -> str:
    """Compact human duration, the one format of every report and finding.

    >>> [format_duration(s) for s in (0.0104, 0.8, 2.5, 45, 877, 10920, 180000)]
    ['10ms', '800ms', '2.5s', '45s', '14m37s', '3h02m', '2d02h']
    """
    seconds = max(0.0, seconds)
    if (millis := round(seconds * 1000)) < 1000:
        return f"{millis}ms"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"
    return f"{whole // 86400}d{(whole % 86400) // 3600:02d}h"
