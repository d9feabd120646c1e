"""`pooldoctor watch`: a real lab incident watched for a few rounds, its record replayed."""

from __future__ import annotations

import doctest
import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from pooldoctor.cli import main
from pooldoctor.evidence import (
    ActivitySample,
    Backend,
    Evidence,
    Holder,
    PoolInstance,
    PoolSample,
    PostgresEvidence,
    evidence_from_json,
)
from pooldoctor.exitcodes import ExitCode
from pooldoctor.findings import Diagnosis, Status
from pooldoctor.lab.cluster import TempCluster
from pooldoctor.lab.load import request_once
from pooldoctor.lab.webapp import LabConfig, run_lab_app
from pooldoctor.watch import rate as rate_module
from pooldoctor.watch.model import (
    BackendGroup,
    PoolRow,
    SessionRow,
    SortKey,
    WatchView,
    build_view,
    scoped_command,
    timeout_rate,
)
from pooldoctor.watch.rate import Rate
from pooldoctor.watch.render import render_view, status_line
from tests.httpserver import LocalHTTPServer, Response

HANG_BOUND_SECONDS = 30.0  # generous: the point is that it ends, not how fast
ROUND_LINE = r"^\d\d:\d\d:\d\dZ round \d+ (OK|WARNING|CRITICAL|UNKNOWN): "
AT = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def test_watch_a_real_leak_for_a_few_rounds_then_replay_the_record(
    pg: TempCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = LabConfig(pool_size=2, max_overflow=0, pool_timeout=1, application_name="watch-leak")
    record = tmp_path / "watch.json"
    with run_lab_app(pg, config, tmp_path / "app.log") as app:
        assert request_once(app.url("/orders?quantity=500"), 5) == "500"
        assert request_once(app.url("/orders?quantity=501"), 5) == "500"
        code = main(
            [
                "watch",
                "--pool-status",
                app.url("/pool-status"),
                "--dsn",
                pg.dsn(),
                "--interval",
                "0.3",
                "--duration",
                "3",  # several rounds even when the first one is slow on a busy machine
                "--record",
                str(record),
            ]
        )
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) >= 2, captured.out  # ended by --duration after a few rounds
    for line in lines:
        assert re.match(ROUND_LINE, line), line
    assert "2/2 (100%)" in lines[-1]
    assert "idle in transaction" in lines[-1]
    assert code == ExitCode.CRITICAL
    assert f"evidence recorded to {record}" in captured.err

    evidence = evidence_from_json(record.read_text())
    [pool] = evidence.pools
    assert len(pool.samples) == len(lines)
    assert evidence.postgres is not None and len(evidence.postgres.samples) == len(lines)
    code = main(["diagnose", "--evidence", str(record), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == ExitCode.CRITICAL
    assert report["findings"][0]["runbook"] == "connection-leak"


def test_watch_without_live_sources_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["watch", "--log", str(tmp_path / "app.log")]) == ExitCode.USAGE
    assert "nothing live to watch" in capsys.readouterr().err


def test_a_record_that_cannot_be_written_is_refused_before_watching(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_directory = tmp_path / "notes.txt"
    not_a_directory.write_text("a file where the record's directory should be\n")
    record = not_a_directory / "watch.json"
    code = main(
        [
            *("watch", "--pool-status", "http://127.0.0.1:9/pool-status"),
            *("--duration", "5", "--record", str(record)),
        ]
    )
    captured = capsys.readouterr()
    assert code == ExitCode.USAGE
    assert captured.out == ""  # refused up front, not after the watch
    assert f"--record {record} cannot be written" in captured.err


def test_unreachable_sources_still_end_and_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "r.json"
    code = main(
        [
            "watch",
            "--pool-status",
            "http://127.0.0.1:9/pool-status",
            "--timeout",
            "0.5",
            "--interval",
            "0.2",
            "--duration",
            "1.5",  # a few rounds even on a busy machine
            "--record",
            str(record),
        ]
    )
    out = capsys.readouterr().out
    assert code == ExitCode.UNKNOWN
    assert "connection refused" in out
    rounds = out.splitlines()
    assert len(rounds) >= 2, out
    # watch asks a refusing URL again every round (an app restart comes back), and says so
    assert "not retried" not in out
    assert len(evidence_from_json(record.read_text()).pools[0].errors) == len(rounds)


# --- the view, from evidence ------------------------------------------------------------------


def _backend(pid: int, state: str, **times: datetime) -> Backend:
    return Backend(
        pid=pid,
        backend_type="client backend",
        usename="app",
        datname="app",
        application_name="orders-api",
        client_addr=None,
        state=state,
        backend_start=AT - timedelta(hours=1),
        xact_start=times.get("xact_start"),
        query_start=times.get("query_start"),
        state_change=times.get("state_change"),
        wait_event_type=None,
        wait_event=None,
        query="UPDATE orders SET status = 'x'",
    )


def _evidence() -> Evidence:
    idle = _backend(
        101,
        "idle in transaction",
        xact_start=AT - timedelta(seconds=90),
        query_start=AT - timedelta(seconds=89),
        state_change=AT - timedelta(seconds=89),
    )
    active = _backend(102, "active", query_start=AT - timedelta(seconds=5))
    pools = PoolInstance(
        "http://app-1:8000/pool-status",
        (
            PoolSample(
                AT - timedelta(seconds=30),
                "json",
                size=20,
                checked_out=20,
                max_overflow=10,
                counters={"pool_timeouts": 4.0},
            ),
            PoolSample(
                AT,
                "json",
                size=20,
                checked_out=28,
                max_overflow=10,
                waiting=3,
                counters={"pool_timeouts": 10.0},
                holders=(Holder("app/orders.py:42 in create", 95.0, "t-1", False),),
            ),
        ),
    )
    postgres = PostgresEvidence(
        "db", settings={"max_connections": "100"}, samples=(ActivitySample(AT, (idle, active)),)
    )
    return Evidence(AT, AT - timedelta(minutes=1), "test", pools=(pools,), postgres=postgres)


def test_view_shows_fill_rates_groups_holders_and_the_scoped_command() -> None:
    evidence = _evidence()
    view = build_view(evidence, Diagnosis(Status.WARNING), 7)
    [pool] = view.pools
    assert (pool.checked_out, pool.capacity, pool.waiting) == (28, 30, 3)
    assert pool.timeouts == Rate(6.0, 30.0, full_minute=False)
    assert [(g.state, g.count) for g in view.groups] == [("active", 1), ("idle in transaction", 1)]
    assert [row.what for row in view.sessions] == ["checkout", "open transaction", "query"]
    transaction = view.sessions[1]
    assert transaction.command == (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = 101 "
        "AND xact_start = '2026-11-21T09:28:30+00:00';"
    )
    by_pid = build_view(evidence, Diagnosis(Status.WARNING), 7, SortKey.PID)
    assert [row.pid for row in by_pid.sessions] == [101, 102, None]
    line = status_line(view)
    assert "http://app-1:8000/pool-status 28/30 (93%) 3 waiting 6 timeouts in 30s;" in line
    assert "1 idle in transaction (oldest 1m30s)" in line
    screen = Console(file=io.StringIO(), width=160, record=True)
    screen.print(render_view(view, SortKey.AGE, paused=True, interval=2))
    text = screen.export_text()
    assert "PAUSED" in text and "pg_terminate_backend" in text and "28/30 (93%)" in text
    assert "6 in 30s" in text and "/min" not in text


def _counted(*seconds_and_counts: tuple[float, float]) -> tuple[PoolSample, ...]:
    return tuple(
        PoolSample(AT + timedelta(seconds=at), "json", counters={"pool_timeouts": count})
        for at, count in seconds_and_counts
    )


def test_timeouts_are_counted_over_their_span_until_a_minute_is_watched() -> None:
    early = _counted((0, 10.0), (7, 13.0))
    assert timeout_rate(early) == Rate(3.0, 7.0, full_minute=False)
    # a minute and more: the growth over the samples of the last minute, per minute
    later = _counted((0, 10.0), (7, 13.0), (40, 30.0), (67, 40.0))
    rate = timeout_rate(later)
    assert rate == Rate(27.0, 60.0, full_minute=True)  # from the sample at 7 s to the one at 67 s
    assert rate is not None and (rate.cell(), rate.phrase()) == ("27.0/min", "27.0 timeouts/min")
    assert timeout_rate(_counted((0, 10.0), (60, 10.0))) == Rate(0.0, 60.0, full_minute=True)


def test_rate_texts() -> None:
    assert doctest.testmod(rate_module).failed == 0
    assert Rate(0.0, 0.8, full_minute=False).cell() == "0 in 800ms"


def test_a_view_of_few_rounds_takes_its_rates_from_the_last_minute_of_samples() -> None:
    # The view diagnoses its latest rounds only; the rate still spans the minute behind them.
    url = "http://app-1:8000/pool-status"
    minute = _counted((0, 0.0), (30, 2.0), (61, 5.0))
    few = PoolInstance(url, tuple(replace(s, size=5, checked_out=5) for s in minute[-2:]))
    evidence = Evidence(AT, AT, "test", pools=(few,))
    [alone] = build_view(evidence, Diagnosis(Status.CRITICAL), 9).pools
    assert alone.timeouts == Rate(3.0, 31.0, full_minute=False)
    view = build_view(
        evidence, Diagnosis(Status.CRITICAL), 9, rate_pools=(PoolInstance(url, minute),)
    )
    [spanned] = view.pools
    assert spanned.timeouts == Rate(3.0, 31.0, full_minute=True)
    assert "5/5 (100%) 5.8 timeouts/min" in status_line(view)
    screen = Console(file=io.StringIO(), width=160, record=True)
    screen.print(render_view(view, SortKey.AGE, paused=False, interval=30))
    assert "5.8/min" in screen.export_text()


def test_active_queries_get_a_cancel_scoped_to_that_query() -> None:
    backend = _backend(7, "active", query_start=AT)
    assert scoped_command(backend) == (
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = 7 "
        "AND query_start = '2026-11-21T09:30:00+00:00';"
    )
    assert scoped_command(_backend(8, "idle")) is None


def test_counter_reset_gives_no_rate() -> None:
    samples = (
        PoolSample(AT, "json", counters={"pool_timeouts": 9.0}),
        PoolSample(AT + timedelta(seconds=10), "json", counters={"pool_timeouts": 1.0}),
    )
    assert timeout_rate(samples) is None
    assert SortKey.STATE.next() is SortKey.AGE


def _drain(master: int, until: float, stop: Callable[[bytes], bool]) -> bytes:
    """Read the terminal's output until `stop(output)` or the deadline."""
    output = b""
    while time.monotonic() < until and not stop(output):
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                output += os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
    return output


def _take_the_terminal() -> None:
    """In the child: make stdin (the pty) its controlling terminal, so Ctrl-C sends SIGINT."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


# q, or Ctrl-C typed into the terminal (the tty driver sends SIGINT): a top-like tool is left
# either way, so both write the record and exit with the last round's status.
@pytest.mark.parametrize("quit_key", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_keys_in_a_real_terminal_sort_pause_and_quit(
    http_server: LocalHTTPServer, tmp_path: Path, quit_key: bytes
) -> None:
    payload = {
        **{"size": 20, "max_overflow": 10, "checked_out": 28, "overflow": 8, "timeout": 30},
        "holders": [{"origin": "app/orders.py:42 in create", "age_seconds": 95.0}],
    }
    http_server.routes["/pool-status"] = Response(body=json.dumps(payload))
    record = tmp_path / "keys.json"
    master, slave = pty.openpty()
    child = subprocess.Popen(
        [
            *(sys.executable, "-c", "from pooldoctor.cli import main; main()", "watch"),
            *("--pool-status", http_server.url("/pool-status"), "--interval", "0.3"),
            *("--record", str(record)),
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm"},
        start_new_session=True,
        preexec_fn=_take_the_terminal,
    )
    os.close(slave)
    try:
        deadline = time.monotonic() + HANG_BOUND_SECONDS
        screen = _drain(master, deadline, lambda out: b"keys: s sort" in out)
        assert b"28/30 (93%)" in screen and b"WARNING" in screen
        assert b"sorted by age" in screen
        os.write(master, b"s")
        screen = _drain(master, deadline, lambda out: b"sorted by pid" in out)
        assert b"sorted by pid" in screen
        os.write(master, b"p")
        screen = _drain(master, deadline, lambda out: b"PAUSED" in out)
        assert b"PAUSED" in screen
        os.write(master, quit_key)
        _drain(master, deadline, lambda out: child.poll() is not None)
        # it ends like --duration: the exit code is the last round's status, not 130
        assert child.wait(timeout=HANG_BOUND_SECONDS) == ExitCode.WARNING
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(master)
    assert evidence_from_json(record.read_text()).pools[0].samples


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_watch_still_writes_its_record(
    http_server: LocalHTTPServer, tmp_path: Path, stop: signal.Signals
) -> None:
    payload = {"size": 5, "max_overflow": 0, "checked_out": 1, "overflow": 0, "timeout": 30}
    http_server.routes["/pool-status"] = Response(body=json.dumps(payload))
    record = tmp_path / "interrupted.json"
    child = subprocess.Popen(
        [
            *(sys.executable, "-c", "from pooldoctor.cli import main; main()", "watch"),
            *("--pool-status", http_server.url("/pool-status"), "--interval", "0.2"),
            *("--record", str(record)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], HANG_BOUND_SECONDS)
        assert ready, "no status line from watch"
        first = child.stdout.readline()  # the first round's plain status line
        assert b"round 1 OK" in first
        child.send_signal(stop)
        _, err = child.communicate(timeout=HANG_BOUND_SECONDS)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == ExitCode.OK
    assert b"evidence recorded to" in err
    assert evidence_from_json(record.read_text()).pools[0].samples


def test_ctrl_c_again_while_the_log_is_read_writes_the_record_without_it(
    http_server: LocalHTTPServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payload = {"size": 5, "max_overflow": 0, "checked_out": 1, "overflow": 0, "timeout": 30}
    http_server.routes["/pool-status"] = Response(body=json.dumps(payload))
    log = tmp_path / "app.log"
    log.write_text("2026-11-21 09:30:00,000 INFO app: started\n")
    record = tmp_path / "watch.json"

    def second_ctrl_c(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt  # as if typed while a big log is read for the record

    import pooldoctor.collect.logs

    monkeypatch.setattr(pooldoctor.collect.logs, "collect_logs", second_ctrl_c)
    code = main(
        [
            *("watch", "--pool-status", http_server.url("/pool-status"), "--log", str(log)),
            *("--interval", "0.2", "--duration", "0.5", "--record", str(record)),
        ]
    )
    captured = capsys.readouterr()
    assert code == ExitCode.OK  # the last round's status, as for any end of a watch
    assert "reading --log for the record (Ctrl-C again to record without it)" in captured.err
    evidence = evidence_from_json(record.read_text())
    assert evidence.pools[0].samples
    assert not evidence.logs
    [log_status] = [source for source in evidence.sources if source.kind == "log"]
    assert log_status.name == str(log)
    assert "not read: interrupted" in log_status.detail


def test_hostile_text_from_the_server_cannot_drive_the_terminal() -> None:
    hostile = replace(
        _backend(66, "active", query_start=AT - timedelta(seconds=40)),
        application_name="evil\x1b[2J\rapp",
        query="SELECT 1 /* \x1b]0;owned\x07 */",
    )
    postgres = PostgresEvidence("db", samples=(ActivitySample(AT, (hostile,)),))
    evidence = Evidence(AT, AT - timedelta(minutes=1), "test", postgres=postgres)
    view = build_view(evidence, Diagnosis(Status.OK), 1)
    screen = Console(file=io.StringIO(), width=160, record=True, color_system=None)
    screen.print(render_view(view, SortKey.AGE, paused=False, interval=2))
    shown = screen.export_text()
    for text in (shown, status_line(view)):
        assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "evil[2Japp" in shown


OUTSIDE = "[/] [bold red]x"


def test_outside_text_in_the_live_view_is_printed_literally() -> None:
    view = WatchView(
        at=datetime(2026, 11, 21, 9, 30, tzinfo=UTC),
        round=1,
        status=Status.CRITICAL,
        pools=(PoolRow(f"app {OUTSIDE}", checked_out=2, capacity=2, error=f"HTTP 500 {OUTSIDE}"),),
        groups=(BackendGroup(OUTSIDE, f"idle {OUTSIDE}", 1, 5.0, 0),),
        sessions=(SessionRow(OUTSIDE, OUTSIDE, OUTSIDE, "idle in transaction", 5.0, OUTSIDE),),
        leading=None,
        problems=(OUTSIDE,),
    )
    console = Console(record=True, width=400, color_system=None)
    console.print(render_view(view, SortKey.AGE, paused=False, interval=1.0))  # no MarkupError
    assert console.export_text().count("[bold red]x") == 9
