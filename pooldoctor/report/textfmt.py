"""Small text formatters shared by the report builder and renderers: times, durations, lengths."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


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


def format_duration(seconds: float) -> str:
    """Human duration at the precision on-call needs: 45s, 14m 12s, 2h 03m, 3d 4h."""
    total = max(0, round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def shorten(text: str, limit: int) -> str:
    """Collapse whitespace and cut to `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: max(0, limit - 1)].rstrip() + "…"


def percent(fraction: float) -> str:
    """0.925 -> 92%"""
    return f"{round(fraction * 100):d}%"
