"""The bad-input corpus: one case per defect class of issue 11, each run through the real CLI,
asserting the exit code, no traceback, no secret or terminal escape in any stream or file, and a
report where one is possible. Cases whose property is bounded memory, a signal or the process's
exit run in a child process under an address-space limit and a time bound; the others run the
CLI's `main` in this process with captured streams (the same assertions, no interpreter start)."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from pooldoctor.collect import pgbouncer, prometheus
from pooldoctor.collect.inputs import DeadlineReader
from pooldoctor.collect.logs.reader import LogStream
from pooldoctor.collect.postgres import open_postgres
from pooldoctor.evidence import SourceState, evidence_from_json
from pooldoctor.exitcodes import ExitCode
from pooldoctor.lab.cluster import TempCluster
from tests.fakepg import INT8_OID, NUMERIC_OID, TEXT_OID, Answer, fake_console
from tests.hostile import (
    SECRET,
    SIGINT,
    SIGTERM,
    Run,
    fake_postgres_refusing,
    fork_main,
    run_and_signal,
    run_cli,
    run_main,
)
from tests.httpserver import LocalHTTPServer, Response

REPORT_FILES = ("report.md", "report.html", "report.json", "evidence.json")
LIVE = ("--samples", "1", "--interval", "0", "--timeout", "2")


def assert_report(run: Run, out: Path) -> str:
    for name in REPORT_FILES:
        assert out / name in run.files, f"{name} missing; stderr: {run.stderr}"
    return run.report(out)


# --- secrets reach reports ---------------------------------------------------------------------


MISTYPED_DSNS = [
    f"postgresql:/app:{SECRET}@127.0.0.1/db",
    f"postgresql//app:{SECRET}@127.0.0.1/db",
    f"app:{SECRET}@127.0.0.1/db",
    f"host=127.0.0.1 port=1 user=app password=first {SECRET} dbname=app",
]


def test_mistyped_dsn_never_echoes_its_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for index, dsn in enumerate(MISTYPED_DSNS):
        out = tmp_path / f"out{index}"
        args = ("diagnose", "--dsn", dsn, *LIVE, "--out", str(out))
        run = run_main(capsys, *args, outputs=[out])
        assert run.code == ExitCode.UNKNOWN, dsn
        run.assert_clean(SECRET)
        assert "invalid DSN" in assert_report(run, out)


SECRET_LOG_LINES = [
    f"Authorization: Bearer {SECRET}",
    f"Authorization: Basic {base64.b64encode(f'app:{SECRET}'.encode()).decode()}",
    f"GET /cb?access_token={SECRET}&x=1",
    f"auth_token={SECRET}",
    f"client_secret={SECRET}",
    f"Cookie: session={SECRET}",
    f'{{"db_password": "{SECRET}"}}',
    f"postgresql://app:{SECRET}@db/app",
]


def test_secrets_in_log_lines_are_redacted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    lines = [
        f"2026-11-21 09:3{i}:00,000 ERROR sqlalchemy.pool: QueuePool limit of size 5 overflow 0 "
        f"reached, connection timed out, timeout 30.00 {secret}"
        for i, secret in enumerate(SECRET_LOG_LINES)
    ]
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    run = run_main(capsys, "diagnose", "--log", str(log), "--out", str(out), outputs=[out])
    assert run.code in (ExitCode.OK, ExitCode.WARNING, ExitCode.CRITICAL)
    run.assert_clean(SECRET, base64.b64encode(f"app:{SECRET}".encode()).decode())
    assert "QueuePool limit" in run.files[out / "evidence.json"].decode()


def test_config_problems_do_not_echo_secret_values(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "app.env"
    config.write_text(f"POOL_TIMEOUT=postgresql://u:{SECRET}@h/db\nDB_POOL_SIZE=token={SECRET}\n")
    out = tmp_path / "out"
    run = run_main(capsys, "diagnose", "--config", str(config), "--out", str(out), outputs=[out])
    assert run.code == ExitCode.UNKNOWN
    run.assert_clean(SECRET)
    assert "POOL_TIMEOUT" in assert_report(run, out)


def test_basic_credentials_echoed_by_a_peer_are_redacted(
    capsys: pytest.CaptureFixture[str], http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    encoded = base64.b64encode(f"app:{SECRET}".encode()).decode()

    def echo() -> Response:
        headers = http_server.request_headers.get("/pool-status", {})
        return Response(500, f"bad auth {headers.get('Authorization')}", "text/plain")

    http_server.routes["/pool-status"] = echo
    url = http_server.url("/pool-status").replace("://", f"://app:{SECRET}@")
    out = tmp_path / "out"
    run = run_main(
        capsys, "diagnose", "--pool-status", url, *LIVE, "--out", str(out), outputs=[out]
    )
    assert run.code == ExitCode.UNKNOWN
    run.assert_clean(SECRET, encoded)
    assert "HTTP 500" in assert_report(run, out)


# --- unbounded reads ---------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def test_devices_and_fifos_are_refused_in_one_line(
    fifo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sources = ["/dev/zero", "/dev/urandom", str(fifo)]
    zeros = tmp_path / "huge.log"  # a sparse 40 GiB regular file of NUL bytes
    with open(zeros, "wb") as handle:
        handle.truncate(40 * 1024**3)
    out = tmp_path / "out"
    args = [arg for path in sources for arg in ("--log", path, "--config", path)]
    run = run_cli("diagnose", *args, "--log", str(zeros), "--out", str(out), outputs=[out])
    assert run.code == ExitCode.UNKNOWN
    run.assert_clean()
    report = assert_report(run, out)
    assert report.count("not a regular file") >= 2 * len(sources)
    assert "binary data" in report
    for device in ("/dev/zero", str(fifo)):
        run = run_main(capsys, "diagnose", "--evidence", device)
        assert run.code == ExitCode.INPUT
        run.assert_clean()
        assert run.stderr.count("\n") == 1 and "not a regular file" in run.stderr


def test_binary_stdin_log_stops_at_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with open("/dev/urandom", "rb") as stdin:
        run = run_cli(
            "diagnose", "--log", "-", "--out", str(out), outputs=[out], stdin=stdin.fileno()
        )
    assert run.code == ExitCode.UNKNOWN
    run.assert_clean()
    assert "binary data" in assert_report(run, out)


def test_evidence_on_stdin_is_capped(tmp_path: Path) -> None:
    with open("/dev/zero", "rb") as stdin:
        run = run_cli("diagnose", "--evidence", "-", stdin=stdin.fileno())
    assert run.code == ExitCode.INPUT
    run.assert_clean()
    assert "larger than" in run.stderr


def test_ctrl_c_during_an_endless_log_scan_keeps_a_partial_report(tmp_path: Path) -> None:
    reader, writer = os.pipe()
    stop = threading.Event()
    fed = [0]

    def feed() -> None:  # a log that never ends
        line = b"2026-11-21 09:30:00,000 INFO app: request served\n" * 2000
        with open(writer, "wb", buffering=0) as pipe:
            while not stop.is_set():
                try:
                    fed[0] += pipe.write(line)
                except (BrokenPipeError, OSError):
                    return

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    out = tmp_path / "out"
    try:
        run = run_and_signal(
            "diagnose",
            "--log",
            "-",
            "--out",
            str(out),
            when=lambda: fed[0] > 2 * 1024 * 1024,  # past the pipe's buffer: the scan is under way
            signum=SIGINT,
            stdin=reader,
            outputs=[out],
        )
    finally:
        stop.set()
        os.close(reader)
    assert run.code == ExitCode.INTERRUPTED, run
    run.assert_clean()
    assert run.stderr.strip().splitlines()[-1].startswith("pooldoctor: interrupted"), run
    assert "interrupted while reading logs" in assert_report(run, out)


# --- internal errors ---------------------------------------------------------------------------


HOLDER_AGES = ["1e11", "1e308", "-5", '"NaN"']


def test_absurd_holder_ages_are_a_source_problem(
    capsys: pytest.CaptureFixture[str], http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    urls = []
    for index, age in enumerate(HOLDER_AGES):
        body = (
            '{"size": 5, "checked_out": 5, "checked_in": 0, "overflow": 0, "max_overflow": 0, '
            f'"holders": [{{"origin": "app.py:10", "age_seconds": {age}}}]}}'
        )
        http_server.routes[f"/pool-status/{index}"] = Response(body=body)
        urls += ["--pool-status", http_server.url(f"/pool-status/{index}")]
    out = tmp_path / "out"
    run = run_main(capsys, "diagnose", *urls, *LIVE, "--out", str(out), outputs=[out])
    assert run.code == ExitCode.UNKNOWN
    run.assert_clean()
    assert assert_report(run, out).count("age_seconds") >= len(HOLDER_AGES)


ABSURD_CONFIG = [
    ("POOL_SIZE=" + "9" * 5000, "POOL_SIZE"),
    ("POOL_SIZE=-3", "out of range"),
    ("MAX_OVERFLOW=-5", "out of range"),
    ("WORKERS=0", "out of range"),
    ("POOL_TIMEOUT=1" + "0" * 400, "POOL_TIMEOUT"),
]


def test_absurd_config_values_are_config_problems(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = []
    for index, (line, _) in enumerate(ABSURD_CONFIG):
        config = tmp_path / f"app{index}.env"
        config.write_text(line + "\n")
        args += ["--config", str(config)]
    out = tmp_path / "out"
    run = run_main(capsys, "diagnose", *args, "--out", str(out), outputs=[out])
    assert run.code == ExitCode.UNKNOWN
    run.assert_clean()
    report = assert_report(run, out)
    for index, (_, problem) in enumerate(ABSURD_CONFIG):
        assert f"app{index}.env:1: " in report and problem in report


LEAK_EVIDENCE = Path(__file__).parent / "data" / "checks" / "connection-leak.failing.json"


def _evidence_text() -> str:
    return LEAK_EVIDENCE.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('"size": 20', '"size": NaN', 1), "NaN"),
        (lambda t: t.replace('"size": 20', '"size": Infinity', 1), "Infinity"),
        (lambda t: t.replace('"size": 20', '"size": 1e308', 1), "out of range"),
        (lambda t: t.replace('"age_seconds": ', '"age_seconds": 1e11 + ', 1), ""),
        (lambda t: '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper"),
    ],
)
def test_hostile_evidence_files_are_input_errors(  # type: ignore[no-untyped-def]
    edit, message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = _evidence_text()
    assert '"size": 20' in text
    path = tmp_path / "evidence.json"
    path.write_text(edit(text))
    args = ("diagnose", "--evidence", str(path))
    run = run_main(capsys, *args)
    assert run.code == ExitCode.INPUT
    run.assert_clean()
    assert message in run.stderr


def test_holder_age_out_of_range_in_evidence_is_an_input_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = json.loads(_evidence_text())
    holders = [s for p in data["pools"] for s in p["samples"] if s["holders"]]
    holders[0]["holders"][0]["age_seconds"] = 1e11
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(data))
    run = run_main(capsys, "diagnose", "--evidence", str(path))
    assert run.code == ExitCode.INPUT
    run.assert_clean()
    assert "out of range" in run.stderr


@pytest.mark.parametrize("since", ["800000d", "99999999999999s", "0001-01-01T00:00:00+05:00"])
def test_time_arguments_that_overflow_are_usage_errors(
    since: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    log.write_text("2026-11-21 09:30:00,000 INFO ok\n")
    args = ("diagnose", "--log", str(log), "--since", since)
    run = run_main(capsys, *args)
    assert run.code == ExitCode.USAGE
    run.assert_clean()


MARKUP = "[/] [bold red]x"


def test_rich_markup_in_outside_text_is_printed_literally(
    capsys: pytest.CaptureFixture[str], http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    http_server.routes["/pool-status"] = Response(500, f"boom {MARKUP}", "text/plain")
    config = tmp_path / f"app{MARKUP.replace('/', '')}.env"
    config.write_text(f"POOL_SIZE={MARKUP}\n")
    out = tmp_path / "evidence.json"
    run = run_main(
        capsys,
        "capture",
        "--pool-status",
        http_server.url("/pool-status"),
        "--config",
        str(config),
        *LIVE,
        "--out",
        str(out),
        outputs=[out],
    )
    assert run.code == ExitCode.UNKNOWN
    run.assert_clean()
    assert "[bold red]x" in run.stderr
    run = run_main(capsys, "diagnose", "--evidence", str(out))
    assert run.code == ExitCode.UNKNOWN
    run.assert_clean()
    assert "[bold red]x" in run.stdout


# --- wrong or lost evidence --------------------------------------------------------------------


def test_one_impossible_utc_offset_costs_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        "2026-11-21 09:30:00+24 ERROR x\n"
        "[2026-11-21 09:30:01 +3000] [42] [ERROR] y\n"
        + "".join(
            f"2026-11-21 09:31:0{i},000 ERROR sqlalchemy.pool: QueuePool limit of size 5 "
            "overflow 0 reached, connection timed out, timeout 30.00\n"
            for i in range(5)
        )
    )
    out = tmp_path / "out"
    run = run_main(capsys, "diagnose", "--log", str(log), "--out", str(out), outputs=[out])
    assert run.code in (ExitCode.OK, ExitCode.WARNING, ExitCode.CRITICAL)
    run.assert_clean()
    report = assert_report(run, out)
    assert "2 line(s) with an impossible timestamp" in report
    evidence = evidence_from_json(run.files[out / "evidence.json"].decode())
    assert evidence.logs[0].lines == 7
    assert evidence.sources[0].status is SourceState.OK


def test_a_body_cut_short_of_its_content_length_is_not_a_sample(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = b'{"size": 5, "checked_out": 12345, "checked_in": 0}'
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]

        def answer() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                head = (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                )
                conn.sendall(head.encode() + body[:30])

        threading.Thread(target=answer, daemon=True).start()
        out = tmp_path / "out"
        run = run_main(
            capsys,
            "diagnose",
            "--pool-status",
            f"http://127.0.0.1:{port}/",
            *LIVE,
            "--out",
            str(out),
            outputs=[out],
        )
    assert run.code == ExitCode.UNKNOWN
    run.assert_clean()
    assert "cut short" in assert_report(run, out)


# --- injection ---------------------------------------------------------------------------------

EVIL_ROLE = 'x"; DROP DATABASE appdb; --'
QUOTED_EVIL_ROLE = '"x""; DROP DATABASE appdb; --"'
EVIL_APP = "<script>alert(1)</script>"
EVIL_QUERY = "SELECT '<img src=x onerror=alert(1)>' AS a"


@pytest.fixture
def evil_sessions(pg: TempCluster) -> Iterator[None]:
    pg.execute(f"CREATE ROLE {QUOTED_EVIL_ROLE} LOGIN SUPERUSER")
    held = psycopg.connect(pg.dsn(), user=EVIL_ROLE, autocommit=False, application_name=EVIL_APP)
    try:
        held.execute(EVIL_QUERY)
        yield
    finally:
        held.close()
        pg.execute(f"DROP ROLE {QUOTED_EVIL_ROLE}")


def test_role_names_and_outside_html_are_quoted_and_escaped(
    capsys: pytest.CaptureFixture[str], pg: TempCluster, evil_sessions: None, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run = run_main(capsys, "diagnose", "--dsn", pg.dsn(), *LIVE, "--out", str(out), outputs=[out])
    assert run.code in (ExitCode.OK, ExitCode.WARNING, ExitCode.CRITICAL)
    run.assert_clean()
    md = assert_report(run, out)
    assert 'ALTER ROLE "x""; DROP DATABASE appdb; --" SET' in md
    assert 'ALTER ROLE "x";' not in md
    for name in ("report.md", "report.html"):
        text = run.report(out, name)
        assert "<script>alert" not in text and "<img src" not in text, name


def test_escape_bytes_from_a_peer_reach_no_output(
    capsys: pytest.CaptureFixture[str], http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    body = json.dumps(
        {
            "size": 2,
            "checked_out": 2,
            "checked_in": 0,
            "overflow": 0,
            "max_overflow": 0,
            "holders": [
                {
                    "origin": "\x1b[2J\x1b]0;pwned\x07app.py:1 <img src=x onerror=alert(1)>",
                    "age_seconds": 400,
                },
                {"origin": "app.py:2 **bold** [link](http://evil)", "age_seconds": 300},
            ],
        }
    )
    http_server.routes["/pool-status"] = Response(body=body)
    out = tmp_path / "out"
    run = run_main(
        capsys,
        "diagnose",
        "--pool-status",
        http_server.url("/pool-status"),
        *LIVE,
        "--format",
        "md",
        "--out",
        str(out),
        outputs=[out],
    )
    assert run.code in (ExitCode.WARNING, ExitCode.CRITICAL)
    run.assert_clean()
    for name in ("report.md", "report.html"):
        assert "<img src" not in run.report(out, name)
    assert "[link](http://evil)" not in run.report(out)


# --- exit codes that lie -----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["existing-file", "read-only", "dangling-symlink"])
def test_out_that_cannot_be_written_exits_73(
    target: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    evidence = tmp_path / "evidence.json"
    evidence.write_text(_evidence_text())
    if target == "existing-file":
        out = tmp_path / "report"
        out.write_text("not a directory")
    elif target == "read-only":
        out = Path("/proc/self/pooldoctor-report")
    else:
        out = tmp_path / "link"
        out.symlink_to(tmp_path / "missing" / "dir")
    args = ("diagnose", "--evidence", str(evidence), "--out", str(out))
    run = run_main(capsys, *args)
    assert run.code == ExitCode.CANNOT_WRITE
    run.assert_clean()
    assert "cannot write the report" in run.stderr


def test_capture_out_that_cannot_be_written_exits_73(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "app.env"
    config.write_text("POOL_SIZE=5\n")
    run = run_main(capsys, "capture", "--config", str(config), "--out", "/proc/self/evidence.json")
    assert run.code == ExitCode.CANNOT_WRITE
    run.assert_clean()


def test_refused_for_too_many_clients_is_critical_evidence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with fake_postgres_refusing("53300", "sorry, too many clients already") as port:
        dsn = f"host=127.0.0.1 port={port} user=app dbname=app password={SECRET} sslmode=disable"
        run = run_main(capsys, "diagnose", "--dsn", dsn, *LIVE, "--out", str(out), outputs=[out])
    assert run.code == ExitCode.CRITICAL
    run.assert_clean(SECRET)
    data = json.loads(run.files[out / "report.json"])
    assert data["findings"][0]["check"] == "server-max-connections"
    assert data["findings"][0]["severity"] == "critical"


@pytest.mark.parametrize(("signum", "code"), [(SIGINT, 130), (SIGTERM, 143)])
def test_signal_during_a_hung_fetch_keeps_the_partial_capture(
    signum: int, code: int, http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    body = '{"size": 5, "checked_out": 1, "checked_in": 4, "overflow": 0, "max_overflow": 0}'
    answers = iter([Response(body=body)])
    http_server.routes["/pool-status"] = lambda: next(answers, Response(body=body, delay=60))
    out = tmp_path / "evidence.json"
    run = run_and_signal(
        "capture",
        "--pool-status",
        http_server.url("/pool-status"),
        "--samples",
        "5",
        "--interval",
        "0",
        "--timeout",
        "60",
        "--out",
        str(out),
        when=lambda: sum(http_server.hits.values()) >= 2,
        signum=signum,
        outputs=[out],
    )
    assert run.code == code
    run.assert_clean()
    assert run.stderr.strip().splitlines()[-1].startswith("pooldoctor: ")
    evidence = evidence_from_json(run.files[out].decode())
    assert len(evidence.pools[0].samples) == 1
    assert any(s.kind == "capture" for s in evidence.sources)


@pytest.mark.parametrize("signum", [SIGINT, SIGTERM])
def test_signal_during_a_hung_fetch_ends_a_watch_with_its_record(
    signum: int, http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    """watch runs capture's sampling loop: a signal cancels the hung fetch there too, so the
    process does not wait out the --timeout on its way out."""
    body = '{"size": 5, "checked_out": 1, "checked_in": 4, "overflow": 0, "max_overflow": 0}'
    answers = iter([Response(body=body)])
    http_server.routes["/pool-status"] = lambda: next(answers, Response(body=body, delay=60))
    record = tmp_path / "watch.json"
    run = run_and_signal(
        "watch",
        "--pool-status",
        http_server.url("/pool-status"),
        "--interval",
        "0.2",
        "--timeout",
        "60",
        "--record",
        str(record),
        when=lambda: sum(http_server.hits.values()) >= 2,
        signum=signum,
        outputs=[record],
    )
    assert run.code == ExitCode.OK  # a signal ends a watch like `q`: the last round's status
    run.assert_clean()
    evidence = evidence_from_json(run.files[record].decode())
    assert len(evidence.pools[0].samples) == 1


def test_concurrent_writers_leave_one_consistent_report(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence.json"
    evidence.write_text(_evidence_text())
    out = tmp_path / "out"
    runs = [  # each run links its runbooks to its own site, so every file names its writer
        fork_main(
            "diagnose",
            "--evidence",
            str(evidence),
            "--out",
            str(out),
            "--site-url",
            f"https://run{index}.example",
        )
        for index in range(2)
    ]
    for process in runs:
        process.join(60)
        assert process.exitcode == ExitCode.CRITICAL
    writers = {
        name: {i for i in range(2) if f"https://run{i}.example" in (out / name).read_text()}
        for name in ("report.md", "report.html", "report.json")
    }
    assert len({frozenset(found) for found in writers.values()}) == 1, writers
    assert len(writers["report.md"]) == 1, writers
    assert sorted(p.name for p in out.iterdir() if p.name != "charts") == sorted(REPORT_FILES)


# --- smaller gaps ------------------------------------------------------------------------------


ABSURD_POOL_NUMBERS = [
    ('{"size": 1e308, "checked_out": 1}', "application/json", "out of range"),
    ("db_pool_size NaN\ndb_pool_checked_out NaN\n", "text/plain", "without a finite value"),
]


def test_absurd_pool_numbers_are_named(
    capsys: pytest.CaptureFixture[str], http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    urls = []
    for index, (body, content_type, _) in enumerate(ABSURD_POOL_NUMBERS):
        http_server.routes[f"/p{index}"] = Response(body=body, content_type=content_type)
        urls += ["--pool-status", http_server.url(f"/p{index}")]
    out = tmp_path / "out"
    run = run_main(capsys, "diagnose", *urls, *LIVE, "--out", str(out), outputs=[out])
    assert run.code == ExitCode.UNKNOWN
    run.assert_clean()
    report = assert_report(run, out)
    for _, _, problem in ABSURD_POOL_NUMBERS:
        assert problem in report


def test_session_setup_failure_fails_closed(
    capsys: pytest.CaptureFixture[str], pg: TempCluster, tmp_path: Path
) -> None:
    database = "setup_denied"
    pg.execute(f"CREATE DATABASE {database}")
    pg.execute("CREATE ROLE setup_denied_role LOGIN")
    try:
        pg.execute(
            "REVOKE EXECUTE ON FUNCTION set_config(text, text, boolean) FROM PUBLIC",
            dbname=database,
        )
        out = tmp_path / "evidence.json"
        dsn = pg.dsn(user="setup_denied_role", dbname=database)
        run = run_main(capsys, "capture", "--dsn", dsn, *LIVE, "--out", str(out), outputs=[out])
        assert run.code == ExitCode.UNKNOWN
        run.assert_clean()
        evidence = evidence_from_json(run.files[out].decode())
        assert evidence.postgres is not None
        assert evidence.postgres.samples == ()
        assert any("not sampling" in error for error in evidence.postgres.errors)
    finally:
        pg.execute(f"DROP DATABASE {database} WITH (FORCE)")
        pg.execute("DROP ROLE setup_denied_role")


def test_lock_timeouts_are_labelled_by_attempt(pg: TempCluster) -> None:
    probe = open_postgres(pg.dsn(), 2.0)
    locker = psycopg.connect(pg.dsn(), autocommit=False)
    try:
        locker.execute("LOCK TABLE pg_catalog.pg_database IN ACCESS EXCLUSIVE MODE")
        for _ in range(3):
            probe.sample()
    finally:
        locker.close()
    probe.sample()
    evidence = probe.finish()
    assert [error.split(":")[0] for error in evidence.errors] == [
        "sample 1",
        "sample 2",
        "sample 3",
    ]
    assert all("lock timeout" in error for error in evidence.errors)
    assert len(evidence.samples) == 1


def test_a_stalled_stdin_pipe_ends_the_scan_at_its_time_cap() -> None:
    reader, writer = os.pipe()
    try:
        os.write(writer, b"2026-11-21 09:30:00,000 INFO app: one line then silence\n")
        with open(reader, "rb", closefd=False) as stream:
            log = LogStream(DeadlineReader(stream, 0.3))
            spans = list(log.spans())
        assert len(spans) == 1
        assert log.stop_reason == "read failed (no more data within 0.3s)"
    finally:
        os.close(reader)
        os.close(writer)


def test_hostile_prometheus_answers_are_bounded(
    http_server: LocalHTTPServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    now = time.time()
    values = [[now - 60, "NaN"], [now - 30, "1e308"], [1e20, "5"], ["x", "5"], [now, "-3"]]
    series = [{"metric": {"instance": "app-1:8000"}, "values": values}]
    answer = {"status": "success", "data": {"resultType": "matrix", "result": series}}
    http_server.routes["/api/v1/query_range"] = Response(body=json.dumps(answer))
    out = tmp_path / "out"
    args = ("diagnose", "--prometheus", http_server.url("/"), "--timeout", "2", "--out", str(out))
    run = run_main(capsys, *args, outputs=[out])
    assert run.code in (ExitCode.OK, ExitCode.WARNING, ExitCode.UNKNOWN)
    run.assert_clean()
    evidence = evidence_from_json(run.files[out / "evidence.json"].decode())
    assert all(sample.size is None for pool in evidence.pools for sample in pool.samples)
    deep = '{"status": "success", "data": ' + "[" * 100_000 + "]" * 100_000 + "}"
    http_server.routes["/api/v1/query_range"] = Response(body=deep)
    run = run_main(capsys, *args, outputs=[out])
    assert run.code == ExitCode.UNKNOWN
    run.assert_clean()
    assert "not the Prometheus API" in assert_report(run, out)


# --- PgBouncer admin console -------------------------------------------------------------------


def _version_then(rest: Callable[[str], Answer]) -> Callable[[str], Answer]:
    def answer(what: str) -> Answer:
        if what == "VERSION":
            return Answer([("version", TEXT_OID)], [["PgBouncer 1.21.0"]])
        return rest(what)

    return answer


def test_a_hung_pgbouncer_console_is_bounded_by_the_timeout(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with fake_console(_version_then(lambda _: Answer(hang=True))) as dsn:
        run = run_cli(
            "diagnose",
            "--pgbouncer",
            dsn,
            *LIVE[:4],
            "--timeout",
            "1",
            "--out",
            str(out),
            outputs=[out],
        )  # a child process: a SHOW blocked for ever would also block the interpreter's exit
    assert run.code == ExitCode.UNKNOWN
    run.assert_clean()
    assert "SHOW POOLS: no answer within 1s; connection dropped" in assert_report(run, out)


def _hostile_console(what: str) -> Answer:
    if what == "POOLS":
        columns = [("database", TEXT_OID), ("user", TEXT_OID), ("cl_active", TEXT_OID)]
        columns += [("cl_waiting", INT8_OID), ("maxwait", NUMERIC_OID)]
        rows: list[list[str | None]] = [
            ["app", "u", "9" * 5000, "-5", "NaN"],
            ["app2", "u", "1e308", "9" * 30, "1e308"],
        ]
        return Answer(columns, rows)
    if what == "STATS":
        columns = [("database", TEXT_OID), ("total_xact_count", NUMERIC_OID)]
        return Answer([*columns, ("avg_wait_time", NUMERIC_OID)], [["app", "NaN", "1e400"]])
    if what == "CLIENTS":
        columns = [("user", TEXT_OID), ("database", TEXT_OID), ("state", TEXT_OID)]
        return Answer(columns, ([f"u{i}", "app", "active"] for i in range(2000)))
    if what == "SERVERS":
        return Answer(error=f"no such user; password {SECRET} rejected")
    return Answer([("key", TEXT_OID), ("value", TEXT_OID)], [])


def test_hostile_pgbouncer_answers_are_bounded_and_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with fake_console(_version_then(_hostile_console)) as dsn:
        run = run_main(
            capsys,
            "diagnose",
            "--pgbouncer",
            f"{dsn} password={SECRET}",
            *LIVE,
            "--out",
            str(out),
            outputs=[out],
        )
    assert run.code in (ExitCode.OK, ExitCode.WARNING, ExitCode.UNKNOWN)
    run.assert_clean(SECRET)
    evidence = evidence_from_json(run.files[out / "evidence.json"].decode())  # strict: no NaN
    bouncer = evidence.pgbouncers[0]
    sample = bouncer.samples[0]
    assert sample.clients_total == 2000 and len(sample.clients) == 500
    assert all(
        0 <= value <= 10_000_000
        for pool in sample.pools
        for value in (pool.cl_active, pool.cl_waiting, pool.maxwait_seconds)
    )
    assert sample.stats["app"] == {}
    errors = " | ".join(bouncer.errors)
    assert "SHOW POOLS: 6 value(s) out of range" in errors
    assert "SHOW STATS: 2 value(s) out of range" in errors
    assert "SHOW SERVERS: no such user; password *** rejected" in errors


def test_a_pgbouncer_console_answering_endless_rows_is_cut_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pgbouncer, "MAX_SHOW_ROWS", 3000)
    rows = ([f"u{i}", "app", "active"] for i in range(10**9))
    columns = [("user", TEXT_OID), ("database", TEXT_OID), ("state", TEXT_OID)]
    with fake_console(_version_then(lambda _: Answer(columns, rows))) as dsn:
        probe = pgbouncer.open_pgbouncer(f"{dsn} password={SECRET}", 30.0)
        probe.sample()
        evidence = probe.finish()
    assert evidence.errors == ("SHOW POOLS: more than 3000 rows; connection dropped",)
    assert probe.round_outcome() == "error: connection lost"


def test_a_mistyped_pgbouncer_dsn_never_echoes_its_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    for index, dsn in enumerate(MISTYPED_DSNS):
        target = out / str(index)
        run = run_main(
            capsys, "diagnose", "--pgbouncer", dsn, *LIVE, "--out", str(target), outputs=[target]
        )
        assert run.code == ExitCode.UNKNOWN, dsn
        run.assert_clean(SECRET)
        assert_report(run, target)


MALFORMED_PROMETHEUS = [
    '{"status": "success", "data": []}',
    '{"status": "success", "data": {"result": [1, "x", {"metric": [], "values": 5}, '
    '{"metric": {"instance": {"a": 1}}, "values": [[1, 2]]}]}}',
]


def test_malformed_or_secret_echoing_prometheus_answers_are_source_problems(
    http_server: LocalHTTPServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url = http_server.url("/").replace("://", f"://app:{SECRET}@")
    token = base64.b64encode(f"app:{SECRET}".encode()).decode()
    out = tmp_path / "out"
    args = ("diagnose", "--prometheus", url, "--timeout", "2", "--out", str(out))
    answers = [Response(body=body) for body in MALFORMED_PROMETHEUS]
    echo = {"status": "error", "errorType": "auth", "error": f"bad {SECRET} / Basic {token}"}
    answers.append(Response(500, json.dumps(echo)))
    answers.append(Response(body='{"status": "success", "data": {"result": []}}' + " " * 5000))
    expected = ["data.result is not a list", "not in the API's shape", "HTTP 500", "larger than"]
    monkeypatch.setattr(prometheus, "MAX_ANSWER_BYTES", 4096)
    for answer, problem in zip(answers, expected, strict=True):
        http_server.routes["/api/v1/query_range"] = answer
        run = run_main(capsys, *args, outputs=[out])
        assert run.code == ExitCode.UNKNOWN, problem
        run.assert_clean(SECRET, token)
        assert problem in assert_report(run, out)


def test_a_prometheus_dripping_its_answer_is_cut_off(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.2)
        port = listener.getsockname()[1]

        def drip() -> None:  # every read gets a byte within the timeout; the answer never ends
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
                    while not stop.wait(0.1):
                        try:
                            conn.sendall(b" ")
                        except OSError:
                            break

        thread = threading.Thread(target=drip, daemon=True)
        thread.start()
        out = tmp_path / "out"
        try:
            args = ("--prometheus", f"http://127.0.0.1:{port}", "--timeout", "1")
            run = run_main(capsys, "diagnose", *args, "--out", str(out), outputs=[out])
        finally:
            stop.set()
            thread.join(5)
    assert run.code == ExitCode.UNKNOWN
    run.assert_clean()
    assert "too slow" in assert_report(run, out)
