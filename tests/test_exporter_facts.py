"""postgres_exporter series (read through --prometheus) stand in for pg_stat_activity counts."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from pooldoctor.checks import server_connections
from pooldoctor.evidence import Evidence, PrometheusEvidence, SeriesPoint
from pooldoctor.readings.exporter import exporter_servers
from tests.evidence_builders import NOW, evidence


def _with_exporter(sessions: dict[str, float], max_connections: float = 100) -> Evidence:
    def series(value: float) -> tuple[SeriesPoint, ...]:
        return (SeriesPoint(NOW - timedelta(seconds=30), value), SeriesPoint(NOW, value))

    server_series = {
        f'pg_stat_activity_count{{datname="app",instance="db-1:9187",state="{state}"}}': series(n)
        for state, n in sessions.items()
    }
    server_series['pg_settings_max_connections{instance="db-1:9187"}'] = series(max_connections)
    history = PrometheusEvidence(
        "http://prometheus:9090", NOW - timedelta(minutes=30), NOW, 30.0,
        server_series=server_series,
    )  # fmt: skip
    return replace(evidence(), prometheus=history)


def test_sessions_against_the_limit_per_server() -> None:
    (server,) = exporter_servers(_with_exporter({"active": 20, "idle": 75}))
    assert (server.instance, server.sessions, server.max_connections, server.usable) == (
        "db-1:9187",
        95,
        100,
        97,
    )


def test_server_near_its_limit_without_a_dsn() -> None:
    (finding,) = server_connections.SPEC.run(_with_exporter({"active": 20, "idle": 75}))
    assert "95 client sessions of 97 usable slots in use (postgres_exporter db-1:9187)" in (
        finding.summary
    )
    assert finding.evidence["sessions_from"] == "postgres_exporter db-1:9187"


def test_room_left_is_not_a_finding() -> None:
    assert server_connections.SPEC.run(_with_exporter({"active": 10, "idle": 40})) == []
