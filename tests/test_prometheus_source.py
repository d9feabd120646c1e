"""--prometheus: a real Prometheus scraping real local exporters, read back by range queries."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from pooldoctor.alerts import alert_rules
from pooldoctor.cli import main
from pooldoctor.collect import prometheus as source
from pooldoctor.collect.options import SourceOptions
from pooldoctor.collect.session import capture
from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import Evidence, SourceState, evidence_from_json, evidence_to_json
from pooldoctor.lab.cluster import TempCluster, free_port
from pooldoctor.lab.fleet import InstanceState, PostgresExporter, serve_fleet
from pooldoctor.lab.pgbouncer import PgBouncerUnavailable, TempPgBouncer
from pooldoctor.lab.prometheus import PrometheusUnavailable, TempPrometheus
from tests.httpserver import LocalHTTPServer, Response

FLEET = 40
PINNED = 17
PINNED_NAME = f"app-{PINNED:04d}:8000"
SCRAPES = 3  # samples per instance before reading the history back
JOIN_SECONDS = 30.0


def _states() -> list[InstanceState]:
    states = [InstanceState(used=3 + n % 4, idle=4, max=10) for n in range(FLEET)]
    states[PINNED] = InstanceState(used=10, idle=0, max=10, pending=6)
    return states


@pytest.fixture(scope="module")
def fleet_prometheus() -> Iterator[TempPrometheus]:
    """40 exporters (one pinned at its max with requests pending) scraped every second."""
    postgres = PostgresExporter({"active": 12, "idle": 70, "idle in transaction": 3}, 100)
    with serve_fleet(_states(), postgres=postgres) as fleet:
        try:
            server = TempPrometheus(fleet.targets)
        except PrometheusUnavailable as exc:
            pytest.fail(str(exc))
        with server:
            server.wait_for_samples(
                f"count(count_over_time(db_client_connection_max[1m]) >= {SCRAPES})",
                FLEET,
            )
            yield server


def _history(server: TempPrometheus, seconds: float = 30) -> Evidence:
    now = datetime.now(UTC)
    return capture(
        SourceOptions(
            prometheus=server.url, since=now - timedelta(seconds=seconds), until=now, timeout=10
        )
    )


def test_one_pinned_instance_among_forty_is_named_first(fleet_prometheus: TempPrometheus) -> None:
    evidence = _history(fleet_prometheus)
    (status,) = evidence.sources
    assert status.status is SourceState.OK, status.detail
    assert len(evidence.pools) == FLEET
    pinned = next(i for i in evidence.pools if i.url.startswith(PINNED_NAME))
    assert len(pinned.samples) >= SCRAPES
    latest = pinned.samples[-1]
    assert (latest.checked_out, latest.checked_in, latest.capacity, latest.waiting) == (
        10,
        0,
        10,
        6,
    )
    others = [i for i in evidence.pools if i is not pinned]
    assert all(i.samples[-1].waiting == 0 for i in others)
    top = diagnose(evidence).findings[0]
    assert PINNED_NAME in top.title, top.title
    assert "1 of 40 instances" in top.summary


def test_older_label_spellings_are_read(fleet_prometheus: TempPrometheus) -> None:
    evidence = _history(fleet_prometheus)
    old_style = next(i for i in evidence.pools if i.url.startswith("app-0004:8000"))
    assert old_style.url == "app-0004:8000 main"
    assert old_style.samples[-1].checked_out == 3 + 4 % 4


def test_history_replays_identically(fleet_prometheus: TempPrometheus) -> None:
    evidence = _history(fleet_prometheus)
    replayed = evidence_from_json(evidence_to_json(evidence))
    assert replayed == evidence
    assert diagnose(replayed).findings == diagnose(evidence).findings


def test_step_and_series_cap_bound_the_history(
    fleet_prometheus: TempPrometheus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source, "MAX_SERIES", 10)
    evidence = _history(fleet_prometheus, seconds=3600)
    history = evidence.prometheus
    assert history is not None
    assert history.step_seconds == 60  # an hour in at most MAX_POINTS points
    assert any("series cap: kept 10 of" in note for note in history.notes)
    assert "series cap" in evidence.sources[0].detail


def test_bad_promql_is_a_one_line_error(fleet_prometheus: TempPrometheus) -> None:
    now = datetime.now(UTC)
    with pytest.raises(source.PrometheusError, match="bad_data"):
        source.range_query(fleet_prometheus.url, "sum(", now - timedelta(minutes=1), now, 1, 5)


def test_error_page_is_a_failed_source_not_a_traceback(http_server: LocalHTTPServer) -> None:
    http_server.routes["/api/v1/query_range"] = Response(
        502, "<html><body>Bad Gateway</body></html>", "text/html"
    )
    evidence = capture(SourceOptions(prometheus=http_server.url("/"), timeout=2))
    (status,) = evidence.sources
    assert status.status is SourceState.ERROR
    assert "HTTP 502" in status.detail and "HTML page" in status.detail
    assert evidence.pools == ()


def test_unreachable_prometheus_is_a_failed_source() -> None:
    port = free_port()
    url = f"http://user:hunter2@127.0.0.1:{port}"
    evidence = capture(SourceOptions(prometheus=url, timeout=1))
    (status,) = evidence.sources
    assert status.status is SourceState.ERROR
    assert f"cannot query: connection refused by 127.0.0.1:{port}: nothing listening" in (
        status.detail
    )
    assert "hunter2" not in evidence_to_json(evidence)


def test_alert_rules_fire_for_the_pinned_instance_only(fleet_prometheus: TempPrometheus) -> None:
    rules = {rule.name: rule for rule in alert_rules()}
    for name in ("PoolSaturated", "PoolRequestsPending"):
        firing = fleet_prometheus.query(rules[name].expr)
        assert [series["metric"]["instance"] for series in firing] == [PINNED_NAME], name


def test_postgres_exporter_series_are_kept_and_summarised(fleet_prometheus: TempPrometheus) -> None:
    evidence = _history(fleet_prometheus)
    history = evidence.prometheus
    assert history is not None
    limit = history.server_series['pg_settings_max_connections{instance="db-1:9187"}']
    assert limit[-1].value == 100
    idle = history.server_series[
        'pg_stat_activity_count{datname="app",instance="db-1:9187",state="idle"}'
    ]
    assert idle[-1].value == 70
    assert "postgres_exporter db-1:9187: 85 of 100 max_connections" in evidence.sources[0].detail
    # No --dsn: the budget is the exporter's server against the fleet's pool capacities.
    budget = next(
        f for f in diagnose(evidence, strict=True).findings if f.check == "server-max-connections"
    )
    assert budget.summary.startswith(
        f"{FLEET} processes x (10) = {FLEET * 10} > 97 available (100 max_connections - "
        "3 superuser - 0 other clients; from postgres_exporter db-1:9187)"
    )
    assert budget.evidence["budget"]["server_from"] == "postgres_exporter db-1:9187"


def _wait_for_waiting_client(bouncer: TempPgBouncer, seconds: float = JOIN_SECONDS) -> None:
    """Until SHOW POOLS has a client waiting for the `postgres` database."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with psycopg.connect(bouncer.admin_dsn(), autocommit=True) as admin:
            rows = admin.execute(b"SHOW POOLS").fetchall()
        if any(row[0] == "postgres" and int(row[3]) >= 1 for row in rows):
            return
        time.sleep(0.05)
    pytest.fail("no client queued in PgBouncer")


def test_capture_with_pgbouncer_and_prometheus_replays_to_the_same_findings(
    fleet_prometheus: TempPrometheus,
    pg: TempCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        bouncer = TempPgBouncer(pg, settings={"default_pool_size": "1", "reserve_pool_size": "0"})
    except PgBouncerUnavailable as exc:
        pytest.fail(str(exc))
    out = tmp_path / "evidence.json"
    with bouncer, psycopg.connect(pg.dsn(), autocommit=True) as holder:
        # Saturated until the test lets go: one client holds the only server connection,
        # blocked on the test's lock, and the other queues in PgBouncer.
        holder.execute(b"SELECT pg_advisory_lock(4343)")

        def blocked() -> None:
            with psycopg.connect(bouncer.dsn(), autocommit=True) as conn:
                conn.execute(b"SELECT pg_advisory_xact_lock(4343)")

        clients = [threading.Thread(target=blocked, daemon=True) for _ in range(2)]
        for client in clients:
            client.start()
        try:
            _wait_for_waiting_client(bouncer)
            sources = ["--pgbouncer", bouncer.admin_dsn(), "--prometheus", fleet_prometheus.url]
            schedule = ["--since", "30s", "--samples", "3", "--interval", "0.2"]
            code = main(["capture", "--out", str(out), *sources, *schedule])
        finally:
            holder.execute(b"SELECT pg_advisory_unlock(4343)")
            for client in clients:
                client.join(JOIN_SECONDS)
    assert code == 0
    evidence = evidence_from_json(out.read_text(encoding="utf-8"))
    kinds = {s.kind: s.status for s in evidence.sources}
    assert kinds == {"pgbouncer": SourceState.OK, "prometheus": SourceState.OK}
    assert evidence.pgbouncers[0].samples and len(evidence.pools) == FLEET
    assert evidence_from_json(evidence_to_json(evidence)) == evidence
    capsys.readouterr()
    assert main(["diagnose", "--evidence", str(out), "--format", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert [f["id"] for f in report["findings"]] == [f.id for f in diagnose(evidence).findings]
    assert {"pgbouncer-saturation", "pool-exhausted"} <= {f["check"] for f in report["findings"]}
