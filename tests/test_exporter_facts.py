"""postgres_exporter series (read through --prometheus) stand in for pg_stat_activity counts."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from pooldoctor.checks import server_connections
from pooldoctor.evidence import Evidence, PoolInstance, PrometheusEvidence, SeriesPoint
from pooldoctor.readings.budget import server_budget
from pooldoctor.readings.exporter import exporter_servers
from tests.evidence_builders import NOW, evidence, pool, pool_sample


def _with_exporter(
    sessions: dict[str, float],
    max_connections: float = 100,
    pools: tuple[PoolInstance, ...] = (),
    servers: tuple[str, ...] = ("db-1:9187",),
) -> Evidence:
    def series(value: float) -> tuple[SeriesPoint, ...]:
        return (SeriesPoint(NOW - timedelta(seconds=30), value), SeriesPoint(NOW, value))

    server_series: dict[str, tuple[SeriesPoint, ...]] = {}
    for server in servers:
        for state, n in sessions.items():
            key = f'pg_stat_activity_count{{datname="app",instance="{server}",state="{state}"}}'
            server_series[key] = series(n)
        server_series[f'pg_settings_max_connections{{instance="{server}"}}'] = series(
            max_connections
        )
    history = PrometheusEvidence(
        "http://prometheus:9090", NOW - timedelta(minutes=30), NOW, 30.0,
        server_series=server_series,
    )  # fmt: skip
    return replace(evidence(pools=pools), prometheus=history)


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


def _fleet(instances: int, checked_out: int) -> tuple[PoolInstance, ...]:
    """`instances` pools of 5+5, each holding `checked_out` of its 5 pooled connections."""
    return tuple(
        pool(pool_sample(NOW, checked_out, size=5, max_overflow=5), url=f"http://app-{n}:8000/p")
        for n in range(instances)
    )


def test_budget_without_a_dsn_from_the_exporter_and_the_fleet() -> None:
    # 12 instances x (5+5) = 120 may open; the server has 95 sessions, 60 of them the pools'.
    budget = server_budget(_with_exporter({"active": 20, "idle": 75}, pools=_fleet(12, 2)), None)
    assert budget is not None
    assert (budget.processes, budget.per_process, budget.demand) == (12, 10, 120)
    assert (budget.other_clients, budget.available, budget.fits) == (35, 62, False)
    assert budget.arithmetic() == (
        "12 processes x (5+5) = 120 > 62 available (100 max_connections - 3 superuser - "
        "35 other clients; from postgres_exporter db-1:9187)"
    )
    assert budget.as_evidence()["server_from"] == "postgres_exporter db-1:9187"


def test_fleet_over_the_exporters_budget_is_a_risk_finding() -> None:
    evidence = _with_exporter({"active": 5, "idle": 55}, pools=_fleet(12, 2))
    (finding,) = server_connections.SPEC.run(evidence)
    assert finding.title == "Pools can open more connections than the server allows"
    assert finding.summary.startswith("12 processes x (5+5) = 120 > 97 available (")
    assert any(
        "per-process pool that fits the server: floor(97 / 12) = 8" in step
        for step in finding.remediation
    )


def test_fleet_within_the_exporters_budget_is_quiet() -> None:
    evidence = _with_exporter({"active": 5, "idle": 35}, pools=_fleet(8, 2))
    assert server_connections.SPEC.run(evidence) == []


def test_several_exported_servers_give_no_budget() -> None:
    # Which server each pool talks to is not in the series: no pairing is guessed.
    evidence = _with_exporter({"idle": 10}, pools=_fleet(12, 2), servers=("db-1:9187", "db-2:9187"))
    assert server_budget(evidence, None) is None
