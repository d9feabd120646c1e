"""Server settings as numbers: timeouts in seconds, counts as integers."""

from __future__ import annotations

from pooldoctor.durations import server_setting_seconds
from pooldoctor.evidence import PostgresEvidence


def setting_seconds(pg: PostgresEvidence | None, name: str) -> float | None:
    """A server timeout setting in seconds (0 = disabled), or None when not collected."""
    if pg is None:
        return None
    return server_setting_seconds(pg.settings.get(name))


def setting_int(pg: PostgresEvidence | None, name: str) -> int | None:
    """A whole-number setting (max_connections), or None when not collected or unreadable."""
    if pg is None or name not in pg.settings:
        return None
    try:
        return int(pg.settings[name].strip())
    except ValueError:
        return None
