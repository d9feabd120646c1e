"""How facts read in findings and the report: one instance label, one query preview, clock times."""

from __future__ import annotations

from datetime import datetime

from pooldoctor.evidence import Backend
from pooldoctor.jsonio import format_utc
from pooldoctor.readings.thresholds import QUERY_PREVIEW_CHARS


def instance_label(url: str) -> str:
    """A pool-status URL without its scheme: names one instance, short enough for a column."""
    return url.split("://", 1)[-1]


def shorten(text: str, limit: int) -> str:
    """Collapse whitespace and cut to `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: max(0, limit - 1)].rstrip() + "…"


def preview(query: str | None) -> str | None:
    """A query as findings and the report quote it: one line, QUERY_PREVIEW_CHARS at most."""
    if query is None:
        return None
    return shorten(query, QUERY_PREVIEW_CHARS)


def fmt_clock(moment: datetime) -> str:
    """Time of day in UTC, e.g. 09:15:23Z."""
    return format_utc(moment)[11:19] + "Z"


def session_label(backend: Backend) -> str:
    """pid 4242 ('api', role app)."""
    name = backend.application_name or "(no application_name)"
    return f"pid {backend.pid} ('{name}', role {backend.usename or '?'})"
