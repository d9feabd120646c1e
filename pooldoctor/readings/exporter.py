"""Facts from postgres_exporter series read through --prometheus: sessions against the limit."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pooldoctor.evidence import Evidence

DEFAULT_SUPERUSER_RESERVED = 3  # PostgreSQL's default when the exporter does not say


@dataclass(frozen=True)
class ExporterServer:
    """One PostgreSQL server as postgres_exporter saw it at the end of the window."""

    instance: str
    sessions: int
    max_connections: int
    superuser_reserved: int

    @property
    def usable(self) -> int:
        return max(0, self.max_connections - self.superuser_reserved)


def _instance(key: str) -> str:
    match = re.search(r'instance="([^"]*)"', key)
    return match.group(1) if match else "?"


def exporter_servers(evidence: Evidence) -> list[ExporterServer]:
    """Servers with both pg_stat_activity_count and pg_settings_max_connections, fullest first."""
    history = evidence.prometheus
    if history is None:
        return []
    sessions: dict[str, float] = {}
    limits: dict[str, float] = {}
    reserved: dict[str, float] = {}
    for key, points in history.server_series.items():
        if not points:
            continue
        instance = _instance(key)
        if key.startswith("pg_stat_activity_count{"):
            sessions[instance] = sessions.get(instance, 0.0) + points[-1].value
        elif key.startswith("pg_settings_max_connections{"):
            limits[instance] = points[-1].value
        elif key.startswith("pg_settings_superuser_reserved_connections{"):
            reserved[instance] = points[-1].value
    servers = [
        ExporterServer(
            instance,
            round(sessions.get(instance, 0.0)),
            round(limit),
            round(reserved.get(instance, DEFAULT_SUPERUSER_RESERVED)),
        )
        for instance, limit in limits.items()
        if instance in sessions and limit > 0
    ]
    return sorted(servers, key=lambda s: -s.sessions / max(1, s.usable))
