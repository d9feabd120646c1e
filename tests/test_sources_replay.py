"""`capture` with --pgbouncer and --prometheus together, replayed by `diagnose --evidence`."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import psycopg
import pytest

from pooldoctor.cli import main
from pooldoctor.collect.options import SourceOptions
from pooldoctor.collect.session import capture
from pooldoctor.diagnosis import diagnose
from pooldoctor.evidence import SourceState, evidence_from_json, evidence_to_json
from pooldoctor.lab.cluster import TempCluster
from pooldoctor.lab.fleet import InstanceState, serve_fleet
from pooldoctor.lab.pgbouncer import PgBouncerUnavailable, TempPgBouncer
from pooldoctor.lab.prometheus import PrometheusUnavailable, TempPrometheus

JOIN_SECONDS = 30.0
HANG_BOUND_SECONDS = 20.0  # generous: the point is "bounded", not "fast"


def test_capture_with_both_new_sources_replays_to_the_same_findings(
    pg: TempCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    states = [InstanceState(used=2, idle=3, max=5) for _ in range(5)]
    states[3] = InstanceState(used=5, idle=0, max=5, pending=2)
    try:
        bouncer = TempPgBouncer(pg, settings={"default_pool_size": "1", "reserve_pool_size": "0"})
    except PgBouncerUnavailable as exc:
        pytest.fail(str(exc))
    with serve_fleet(states) as fleet, bouncer:
        try:
            prometheus = TempPrometheus(fleet.targets)
        except PrometheusUnavailable as exc:
            pytest.fail(str(exc))
        with prometheus:
            prometheus.wait_for_samples(
                "count(count_over_time(db_client_connection_max[1m]) >= 3)", len(states)
            )

            def sleeper() -> None:
                with psycopg.connect(bouncer.dsn(), autocommit=True) as conn:
                    conn.execute(b"SELECT pg_sleep(1.5)")

            clients = [threading.Thread(target=sleeper, daemon=True) for _ in range(3)]
            for client in clients:
                client.start()
            out = tmp_path / "evidence.json"
            code = main(
                [
                    "capture",
                    "--out",
                    str(out),
                    "--pgbouncer",
                    bouncer.admin_dsn(),
                    "--prometheus",
                    prometheus.url,
                    "--since",
                    "30s",
                    "--samples",
                    "3",
                    "--interval",
                    "0.3",
                ]
            )
            for client in clients:
                client.join(JOIN_SECONDS)
    assert code == 0
    evidence = evidence_from_json(out.read_text(encoding="utf-8"))
    assert {s.kind: s.status for s in evidence.sources} == {
        "pgbouncer": SourceState.OK,
        "prometheus": SourceState.OK,
    }
    assert evidence.pgbouncers[0].samples and evidence.prometheus is not None
    assert len(evidence.pools) == len(states)
    assert evidence_from_json(evidence_to_json(evidence)) == evidence
    capsys.readouterr()
    assert main(["diagnose", "--evidence", str(out), "--format", "json"]) in (1, 2)
    report = json.loads(capsys.readouterr().out)
    replayed = [finding["id"] for finding in report["findings"]]
    assert replayed == [finding.id for finding in diagnose(evidence).findings]
    checks = {finding["check"] for finding in report["findings"]}
    assert {"pgbouncer-saturation", "pool-exhausted"} <= checks


def test_silent_pgbouncer_and_prometheus_are_bounded_by_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        started = time.monotonic()
        evidence = capture(
            SourceOptions(
                pgbouncers=(f"host=127.0.0.1 port={port} dbname=pgbouncer user=stats",),
                prometheus=f"http://127.0.0.1:{port}",
                samples=2,
                interval=0.1,
                timeout=1.0,
            )
        )
        elapsed = time.monotonic() - started
    assert elapsed < HANG_BOUND_SECONDS  # bounded, not fast: one timeout per source plus margins
    details = {s.kind: (s.status, s.detail) for s in evidence.sources}
    assert details["pgbouncer"][0] is SourceState.ERROR
    assert "no connection within 1s" in details["pgbouncer"][1]
    assert details["prometheus"][0] is SourceState.ERROR
    assert "timed out" in details["prometheus"][1]


@pytest.mark.parametrize("url", ["prometheus:9090", "ftp://prometheus", "http://user:hunter2@"])
def test_a_bad_prometheus_url_is_a_one_line_usage_error(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diagnose", "--prometheus", url]) == 64
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "is not an http(s) URL" in error
    assert "hunter2" not in error
