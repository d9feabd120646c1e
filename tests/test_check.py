"""`pooldoctor check`: one plugin line with perfdata and exit 0/1/2/3, against real servers."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from pooldoctor.cli import main
from pooldoctor.evidence import (
    ActivitySample,
    Backend,
    Evidence,
    PgBouncerEvidence,
    PgBouncerPool,
    PgBouncerSample,
    PoolInstance,
    PoolSample,
    PostgresEvidence,
    SampleError,
)
from pooldoctor.exitcodes import ExitCode
from pooldoctor.lab.cluster import TempCluster
from pooldoctor.lab.fleet import InstanceState, serve_fleet
from pooldoctor.lab.pgbouncer import PgBouncerUnavailable, TempPgBouncer
from pooldoctor.lab.prometheus import PrometheusUnavailable, TempPrometheus
from pooldoctor.monitoring import Metric, Thresholds, count_bound, evaluate, format_number
from tests.httpserver import LocalHTTPServer, Response

PLUGIN_LINE = re.compile(r"^POOLDOCTOR (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+( \| [^\n]+)?$")
AT = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def pool_payload(checked_out: int, size: int = 20, max_overflow: int = 10) -> str:
    return json.dumps(
        {
            "size": size,
            "max_overflow": max_overflow,
            "checked_out": checked_out,
            "overflow": max(0, checked_out - size),
            "timeout": 30,
        }
    )


def run_check(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check", *args])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 1, out
    assert PLUGIN_LINE.match(lines[0]), lines[0]
    return code, lines[0]


@pytest.mark.parametrize(
    ("checked_out", "expected_code", "state"),
    [
        (28, ExitCode.WARNING, "WARNING"),
        (30, ExitCode.CRITICAL, "CRITICAL"),
        (5, ExitCode.OK, "OK"),
    ],
)
def test_pool_fill_against_percent_thresholds(
    http_server: LocalHTTPServer,
    capsys: pytest.CaptureFixture[str],
    checked_out: int,
    expected_code: ExitCode,
    state: str,
) -> None:
    http_server.routes["/pool-status"] = Response(body=pool_payload(checked_out))
    code, line = run_check(
        ["--pool-status", http_server.url("/pool-status"), "--warning", "80", "--critical", "95"],
        capsys,
    )
    assert code == expected_code
    assert line.startswith(f"POOLDOCTOR {state} - ")
    assert f"{checked_out}/30 checked out" in line
    assert f"'checked_out'={checked_out};24;28;0;30" in line


def test_every_instance_gets_its_own_perfdata_and_the_worst_state_wins(
    http_server: LocalHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    http_server.routes["/a"] = Response(body=pool_payload(30))
    http_server.routes["/b"] = Response(body=pool_payload(3))
    code, line = run_check(
        [
            "-w",
            "80",
            "-c",
            "95",
            "--pool-status",
            http_server.url("/a"),
            "--pool-status",
            http_server.url("/b"),
        ],
        capsys,
    )
    host = f"127.0.0.1:{http_server.port}"
    assert code == ExitCode.CRITICAL
    assert f"'{host}/a checked_out'=30;24;28;0;30" in line
    assert f"'{host}/b checked_out'=3;24;28;0;30" in line
    assert line.index(f"{host}/a 30/30") < line.index(f"{host}/b 3/30")


def test_the_same_instance_given_twice_is_checked_once(
    http_server: LocalHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    http_server.routes["/pool-status"] = Response(body=pool_payload(28))
    url = http_server.url("/pool-status")
    code, line = run_check([f"--pool-status={url}", "--pool-status", url], capsys)
    assert code == ExitCode.WARNING
    assert line.count("checked_out'=") == 1  # perfdata labels stay unique
    assert "'checked_out'=28;24;28;0;30" in line


def test_waiting_thresholds(
    http_server: LocalHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    body = json.loads(pool_payload(10))
    http_server.routes["/pool-status"] = Response(body=json.dumps({**body, "waiting": 7}))
    code, line = run_check(
        [
            "--waiting-warning",
            "2",
            "--waiting-critical",
            "5",
            "--pool-status",
            http_server.url("/pool-status"),
        ],
        capsys,
    )
    assert code == ExitCode.CRITICAL
    assert "'waiting'=7;2;5;0" in line


def test_waiting_thresholds_on_an_instance_that_does_not_report_waiting_are_unknown(
    http_server: LocalHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # SQLAlchemy's QueuePool does not expose how many requests wait: the check cannot judge it
    http_server.routes["/pool-status"] = Response(body=pool_payload(10))
    code, line = run_check(
        ["--waiting-warning", "0", "--pool-status", http_server.url("/pool-status")], capsys
    )
    assert code == ExitCode.UNKNOWN
    assert "10/30 checked out (33%), waiting not reported" in line
    assert "'checked_out'=10;24;28;0;30" in line


def test_idle_in_transaction_thresholds_without_a_database_are_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("POOLDOCTOR_DSN", "DATABASE_URL", "PGSERVICE", "PGHOST", "PGDATABASE"):
        monkeypatch.delenv(variable, raising=False)
    code, line = run_check(
        ["--pool-status", "http://127.0.0.1:9/", "--idle-in-transaction-critical", "60"], capsys
    )
    assert code == ExitCode.UNKNOWN
    assert line.startswith("POOLDOCTOR UNKNOWN - usage: ")
    assert "--idle-in-transaction-critical needs --dsn" in line


def test_unreachable_instance_is_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    code, line = run_check(["--pool-status", "http://127.0.0.1:9/pool-status", "-t", "1"], capsys)
    assert code == ExitCode.UNKNOWN
    assert line.startswith("POOLDOCTOR UNKNOWN - ")


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["--pool-status", "http://127.0.0.1:9/", "-w", "90", "-c", "80"],
        ["--pool-status", "http://127.0.0.1:9/", "--warning", "120"],
        [],
        ["--bogus", "-h"],  # the error comes first: still a plugin answer, not exit 64
    ],
)
def test_usage_errors_are_one_unknown_line(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = run_check(args, capsys)
    assert code == ExitCode.UNKNOWN
    assert line.startswith("POOLDOCTOR UNKNOWN - usage: ")


@pytest.mark.parametrize(
    "args", [["--help"], ["-h"], ["--pool-status", "http://127.0.0.1:9/", "--help"]]
)
def test_help_is_typers_own_and_exits_0(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", *args]) == ExitCode.OK
    out = capsys.readouterr().out
    assert out.startswith("Usage: pooldoctor check [OPTIONS]")
    assert "--idle-in-transaction-critical" in out


def test_idle_in_transaction_age_from_real_postgres(
    pg: TempCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(pg.dsn(), application_name="stuck-worker") as stuck:
        stuck.execute("SELECT 1")  # opens a transaction and leaves it idle
        pid = stuck.info.backend_pid
        code, line = run_check(
            [
                "--idle-in-transaction-critical",
                "0",
                "--idle-in-transaction-warning",
                "0",
                "--dsn",
                pg.dsn(),
            ],
            capsys,
        )
        assert code == ExitCode.CRITICAL
        assert "oldest idle in transaction" in line and f"pid {pid}, stuck-worker" in line
        assert re.search(r"'idle_in_transaction_oldest'=[\d.]+s;0;0;0", line)
        assert re.search(r"'backends'=\d+;;;0;\d+", line)
        stuck.rollback()
        code, line = run_check(["--dsn", pg.dsn(), "--idle-in-transaction-warning", "0"], capsys)
    assert code == ExitCode.OK
    assert "'idle_in_transaction_oldest'=0s;0;;0" in line


# --- the pure parts ---------------------------------------------------------------------------


def test_the_summary_writes_durations_as_reports_do_and_perfdata_keeps_seconds() -> None:
    at = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    stuck = Backend(
        *(4242, "client backend", "app", "orders", "orders", None, "idle in transaction"),
        *(None, at - timedelta(seconds=246), None, at - timedelta(seconds=245.3), None, None),
    )
    postgres = PostgresEvidence(
        "db", settings={"max_connections": "100"}, samples=(ActivitySample(at, (stuck,)),)
    )
    bouncer = PgBouncerEvidence(
        "bouncer",
        samples=(
            PgBouncerSample(
                at, (PgBouncerPool("orders", "app", cl_waiting=3, maxwait_seconds=2.5),)
            ),
        ),
    )
    evidence = Evidence(at, at, "test", postgres=postgres, pgbouncers=(bouncer,))
    line = evaluate(evidence, Thresholds(idle_in_transaction_warning=60)).line()
    assert line.startswith("POOLDOCTOR WARNING - ")
    assert "oldest idle in transaction 4m05s (pid 4242, orders)" in line
    assert "pgbouncer 3 client(s) waiting (longest 2.5s)" in line
    assert "'idle_in_transaction_oldest'=245.3s;60;;0" in line
    assert "'pgbouncer_maxwait'=2.5s;;;0" in line


def test_count_bounds_make_integer_counts_match_percent_rules() -> None:
    for capacity in (1, 7, 30, 45, 200):
        for percent in (0.0, 33.3, 80.0, 95.0, 100.0):
            bound = count_bound(percent, capacity)
            for count in range(capacity + 1):
                assert (count > bound) == (100 * count / capacity > percent)


def test_perfdata_format() -> None:
    assert Metric("checked_out", 28, warning=24, critical=28, minimum=0, maximum=30).perfdata() == (
        "'checked_out'=28;24;28;0;30"
    )
    assert Metric("a'b=c", 1.5, unit="s").perfdata() == "'a_b_c'=1.5s"
    assert Metric("waiting", 0, critical=5).perfdata() == "'waiting'=0;;5"
    assert format_number(12.3456) == "12.35"


def test_unbounded_pool_and_failed_instance_are_unknown() -> None:
    unbounded = PoolInstance(
        "http://a:1/p", (PoolSample(AT, "json", size=5, checked_out=9, max_overflow=-1),)
    )
    failed = PoolInstance("http://b:1/p", errors=(SampleError(AT, "connection refused"),))
    evidence = Evidence(AT, AT - timedelta(seconds=1), "test", pools=(unbounded, failed))
    verdict = evaluate(evidence, Thresholds())
    assert verdict.status.value == "unknown"
    assert "a:1: pool capacity not reported" in verdict.line()
    assert "b:1: connection refused" in verdict.line()
    assert "'a:1 checked_out'=9;;;0" in verdict.line()


def test_pgbouncer_waiting_clients_in_perfdata(
    pg: TempCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        bouncer = TempPgBouncer(pg)
    except PgBouncerUnavailable as exc:
        pytest.fail(str(exc))
    with bouncer:
        code, line = run_check(["--pgbouncer", bouncer.admin_dsn()], capsys)
    assert code == ExitCode.OK
    assert "pgbouncer 0 client(s) waiting" in line
    assert "'pgbouncer_waiting'=0;;;0" in line


def test_unreachable_pgbouncer_is_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    code, line = run_check(
        ["--pgbouncer", "host=127.0.0.1 port=9 dbname=pgbouncer user=stats", "-t", "1"], capsys
    )
    assert code == ExitCode.UNKNOWN
    assert line.startswith("POOLDOCTOR UNKNOWN - pgbouncer: ")


def test_one_check_covers_a_fleet_through_prometheus(capsys: pytest.CaptureFixture[str]) -> None:
    states = [InstanceState(used=2, idle=8, max=10), InstanceState(used=10, idle=0, max=10)]
    with serve_fleet(states) as fleet:
        try:
            server = TempPrometheus(fleet.targets)
        except PrometheusUnavailable as exc:
            pytest.fail(str(exc))
        with server:
            server.wait_for_samples("count(db_client_connection_max)", len(states))
            code, line = run_check(["--prometheus", server.url, "--since", "5m"], capsys)
    assert code == ExitCode.CRITICAL
    assert "'app-0001:8000 main checked_out'=10;8;9;0;10" in line
    assert "'app-0000:8000 main checked_out'=2;8;9;0;10" in line
