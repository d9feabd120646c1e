"""Small text formatters of the report: clock times and percentages (durations: durations.py)."""

from __future__ import annotations

from datetime import datetime

from pooldoctor.jsonio import as_utc

__all__ = ["as_utc", "clock", "hhmm", "percent", "stamp"]


def hhmm(moment: datetime) -> str:
    """09:31"""
    return as_utc(moment).strftime("%H:%M")


def clock(moment: datetime) -> str:
    """09:31:04"""
    return as_utc(moment).strftime("%H:%M:%S")


def stamp(moment: datetime | None) -> str:
    """2026-11-21 09:31:04 (UTC, seconds precision) or an em dash for unknown."""
    if moment is None:
        return "—"
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S")


def percent(fraction: float) -> str:
    """0.925 -> 92%"""
    return f"{round(fraction * 100):d}%"
