"""watch's timeout rate from the app log: only lines appended while it runs, counted over their
span in the first minute and per minute after it, per instance where the records say which."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from pooldoctor.cli import main
from pooldoctor.collect.logs.reader import LONG_LINE_KEEP_BYTES
from pooldoctor.evidence import Evidence, LogEvent, PoolInstance, PoolSample, evidence_from_json
from pooldoctor.exitcodes import ExitCode
from pooldoctor.findings import Diagnosis, Status
from pooldoctor.watch.loginstance import LogRates, UrlRates, rates_by_url
from pooldoctor.watch.logtail import LogTail
from pooldoctor.watch.model import PoolRow, SortKey, build_view, with_log_rate
from pooldoctor.watch.rate import Rate
from pooldoctor.watch.render import render_view, status_line
from tests.httpserver import Response, serve_http

QUEUEPOOL = (
    b"sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached, "
    b"connection timed out, timeout 30.00\n"
)
PSYCOPG = b"psycopg_pool.PoolTimeout: couldn't get a connection after 30.00 sec\n"
ROUTINE = b'127.0.0.1 - - "GET /health HTTP/1.1" 200 2\n'


def _span(tail: LogTail, now: float) -> Rate | None:
    rates = tail.rates(now)
    return None if rates is None else rates.span


def test_counts_only_timeout_lines_appended_after_the_start(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(QUEUEPOOL * 50 + ROUTINE)  # history before the watch: not this minute
    tail = LogTail((str(log),))
    with log.open("ab") as handle:
        handle.write(QUEUEPOOL)  # before the first poll: its baseline, as a counter's first sample
    tail.poll(10.0)
    assert _span(tail, 10.0) is None
    with log.open("ab") as handle:
        handle.write(ROUTINE + QUEUEPOOL + PSYCOPG + QUEUEPOOL[:20])  # the last line unfinished
    tail.poll(20.0)
    assert _span(tail, 20.0) == Rate(2, 10.0, full_minute=False)
    with log.open("ab") as handle:
        handle.write(QUEUEPOOL[20:])  # the line completes in the next round: counted once
    tail.poll(30.0)
    assert _span(tail, 30.0) == Rate(3, 20.0, full_minute=False)
    with log.open("ab") as handle:
        handle.write(QUEUEPOOL * 4)
    tail.poll(70.0)  # a whole minute watched: per minute over the last one
    assert _span(tail, 70.0) == Rate(7, 60.0, full_minute=True)
    tail.poll(135.0)  # the earlier rounds fall out of the one-minute window
    assert _span(tail, 135.0) == Rate(0, 60.0, full_minute=True)


def test_rotation_restarts_at_the_new_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(ROUTINE * 100)
    tail = LogTail((str(log),))
    tail.poll(0.0)
    log.write_bytes(QUEUEPOOL)  # rotated: smaller than where we were
    tail.poll(30.0)
    assert _span(tail, 30.0) == Rate(1, 30.0, full_minute=False)


def test_a_rotation_to_a_file_already_longer_is_followed_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(ROUTINE * 5)  # followed from past where the new file's timeout line ends
    tail = LogTail((str(log),))
    tail.poll(0.0)
    log.rename(tmp_path / "app.log.1")
    log.write_bytes(QUEUEPOOL + ROUTINE * 10)  # a new file, past the old one's size by the poll
    tail.poll(5.0)
    assert _span(tail, 5.0) == Rate(1, 5.0, full_minute=False)


def test_an_unfinished_line_keeps_only_its_start_between_rounds(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    tail = LogTail((str(log),))
    tail.poll(0.0)
    with log.open("ab") as handle:
        handle.write(QUEUEPOOL.rstrip(b"\n") + b" " + b"x" * (4 * LONG_LINE_KEEP_BYTES))
    tail.poll(5.0)
    assert len(tail._partial[str(log)]) == LONG_LINE_KEEP_BYTES  # memory stays bounded
    with log.open("ab") as handle:
        handle.write(b"x" * LONG_LINE_KEEP_BYTES + b"\n")
    tail.poll(10.0)
    assert _span(tail, 10.0) == Rate(1, 10.0, full_minute=False)  # the line, counted once


def test_unfollowable_logs_leave_the_rate_unknown(tmp_path: Path) -> None:
    tail = LogTail(("-", str(tmp_path / "x.log.gz"), str(tmp_path / "missing.log")))
    tail.poll(0.0)
    tail.poll(10.0)
    assert not tail.following and _span(tail, 10.0) is None


def test_a_pool_without_a_counter_takes_the_log_rate() -> None:
    logged = Rate(4, 60.0, full_minute=True)
    counted = PoolRow("http://a", checked_out=3, capacity=10, timeouts=Rate(1, 60.0, True))
    plain = PoolRow("http://b", checked_out=3, capacity=10)
    failed = PoolRow("http://c", error="unreachable")
    assert with_log_rate(counted, logged) == counted
    assert with_log_rate(plain, logged).timeouts == logged
    assert with_log_rate(plain, logged).timeouts_from_log
    assert with_log_rate(plain, None) == plain
    assert with_log_rate(failed, logged) == failed


# --- which instance a record names --------------------------------------------------------

SYSLOG_TIMEOUT = b"Nov 30 05:00:01 app-1 orders[4242]: " + QUEUEPOOL


def _record(header: bytes) -> bytes:
    """A Python logging record whose traceback ends in the pool's timeout error."""
    return (
        header + b" ERROR orders: Exception on /orders\n"
        b"Traceback (most recent call last):\n"
        b'  File "app/orders.py", line 42, in create\n' + QUEUEPOOL
    )


def test_a_traceback_counts_for_the_instance_its_record_names(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    tail = LogTail((str(log),))
    tail.poll(0.0)
    with log.open("ab") as handle:
        handle.write(SYSLOG_TIMEOUT)  # syslog header: host app-1
        handle.write(_record(b"2026-11-30 05:00:02,001 host=app-2.prod.internal"))
        handle.write(_record(b"2026-11-30 05:00:03,001 pid=7"))  # names no instance
        handle.write(_record(b'{"time": "2026-11-30T05:00:04Z", "instance": "10.0.0.3:8000"}'))
        handle.write(QUEUEPOOL)  # a bare line continues the record before it
    tail.poll(30.0)
    rates = tail.rates(30.0)
    assert rates is not None
    assert rates.per_instance == {"app-1": 1, "app-2.prod.internal": 1, None: 1, "10.0.0.3:8000": 2}
    assert rates.span == Rate(5, 30.0, full_minute=False)
    assert rates.named == {"app-1", "app-2.prod.internal", "10.0.0.3:8000"}


def test_a_record_split_across_rounds_keeps_its_instance(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    tail = LogTail((str(log),))
    tail.poll(0.0)
    record = _record(b"2026-11-30 05:00:02,001 host=app-2")
    cut = record.index(b"Traceback")
    with log.open("ab") as handle:
        handle.write(record[:cut])
    tail.poll(10.0)
    with log.open("ab") as handle:
        handle.write(record[cut:])
    tail.poll(20.0)
    rates = tail.rates(20.0)
    assert rates is not None and rates.per_instance == {"app-2": 1}


def test_rates_go_to_the_url_the_log_names_else_app_wide() -> None:
    urls = ("http://app-1.prod:8000/pool-status", "http://app-2.prod:8000/pool-status")
    minute = Rate(9, 60.0, full_minute=True)
    named = LogRates({"app-1": 6, None: 1, "db-1": 2}, frozenset({"app-1", "db-1"}), minute)
    laid = rates_by_url(named, urls)
    assert laid.per_url == {urls[0]: Rate(6, 60.0, True), urls[1]: Rate(0, 60.0, True)}
    # unnamed records and an instance nobody watches
    assert laid.unattributed == Rate(3, 60.0, True)
    early = Rate(5, 12.0, full_minute=False)
    unnamed = LogRates({None: 5}, frozenset(), early)
    assert rates_by_url(unnamed, urls) == UrlRates(None, early, None)
    # two instances on one host: the host alone names neither, host:port names one
    same_host = ("http://10.0.0.5:8001/pool-status", "http://10.0.0.5:8002/pool-status")
    by_host = LogRates({"10.0.0.5": 4}, frozenset({"10.0.0.5"}), minute.with_count(4))
    assert rates_by_url(by_host, same_host).per_url is None
    by_port = LogRates({"10.0.0.5:8002": 4}, frozenset({"10.0.0.5:8002"}), early.with_count(4))
    assert rates_by_url(by_port, same_host).per_url == {
        same_host[0]: Rate(0, 12.0, False),
        same_host[1]: Rate(4, 12.0, False),
    }


def test_the_view_says_per_instance_or_app_wide() -> None:
    at = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)
    pools = tuple(
        PoolInstance(
            f"http://app-{n}:8000/pool-status",
            (PoolSample(at, "json", size=5, checked_out=5, max_overflow=0, waiting=2),),
        )
        for n in (1, 2)
    )
    evidence = Evidence(at, at, "test", pools=pools)
    minute = Rate(15, 120.0, full_minute=True)  # a watch whose last minute was measured long
    named = LogRates({"app-1": 12, None: 3}, frozenset({"app-1"}), minute)
    view = build_view(evidence, Diagnosis(Status.CRITICAL), 2, log_rates=named)
    line = status_line(view)
    assert "app-1:8000/pool-status 5/5 (100%) 2 waiting 6.0 timeouts/min (log);" in line
    assert "app-2:8000/pool-status 5/5 (100%) 2 waiting 0.0 timeouts/min (log);" in line
    assert "log: 1.5 timeouts/min name no watched instance" in line
    first_minute = LogRates({"app-1": 1, None: 3}, frozenset({"app-1"}), Rate(4, 7.0, False))
    early = status_line(build_view(evidence, Diagnosis(Status.CRITICAL), 2, log_rates=first_minute))
    assert "app-1:8000/pool-status 5/5 (100%) 2 waiting 1 timeout in 7.0s (log);" in early
    assert "app-2:8000/pool-status 5/5 (100%) 2 waiting 0 timeouts in 7.0s (log);" in early
    assert "log: 3 timeouts in 7.0s name no watched instance" in early
    unnamed = build_view(
        evidence,
        Diagnosis(Status.CRITICAL),
        2,
        log_rates=LogRates({None: 3}, frozenset(), Rate(3, 60.0, True)),
    )
    assert status_line(unnamed).count("3.0 timeouts/min (log, app-wide)") == 2
    screen = Console(file=io.StringIO(), width=160, record=True)
    screen.print(render_view(unnamed, SortKey.AGE, paused=False, interval=2))
    assert "3.0/min (log, app-wide)" in screen.export_text()
    unnamed_early = build_view(
        evidence,
        Diagnosis(Status.CRITICAL),
        2,
        log_rates=LogRates({None: 3}, frozenset(), Rate(3, 7.0, False)),
    )
    screen = Console(file=io.StringIO(), width=160, record=True)
    screen.print(render_view(unnamed_early, SortKey.AGE, paused=False, interval=2))
    assert "3 in 7.0s (log, app-wide)" in screen.export_text()


# --- end to end: a real watch following a real log --------------------------------------------

ROUND = re.compile(rb"^\d\d:\d\d:\d\dZ round (\d+) ")
APPEND_EVERY_SECONDS = 0.05
APPEND_BOUND = 2000  # lines: the appender stops by itself even if the watch hangs


def test_watch_shows_each_instances_log_rate_from_the_second_round_and_replays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = json.dumps({"size": 5, "max_overflow": 0, "checked_out": 5, "timeout": 30})
    log, record = tmp_path / "app.log", tmp_path / "watch.json"
    log.write_bytes(b"2026-11-30 05:00:00,000 INFO orders: started\n")
    with serve_http() as first, serve_http() as second:
        for server in (first, second):
            server.routes["/pool-status"] = Response(body=payload)  # no timeout counters
        named = f"instance=127.0.0.1:{first.port}".encode()
        stop = threading.Event()

        def append() -> None:
            for _ in range(APPEND_BOUND):
                if stop.wait(APPEND_EVERY_SECONDS):
                    return
                stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S,000").encode()
                with log.open("ab") as handle:
                    handle.write(_record(stamp + b" " + named))

        appender = threading.Thread(target=append)
        appender.start()
        try:
            done = subprocess.run(
                [
                    *(sys.executable, "-c", "from pooldoctor.cli import main; main()", "watch"),
                    *("--pool-status", first.url("/pool-status")),
                    *("--pool-status", second.url("/pool-status")),
                    *("--log", str(log), "--log-tz", "UTC", "--interval", "0.4"),
                    *("--duration", "3.5", "--record", str(record)),
                ],
                capture_output=True,
                timeout=60,
                check=False,
            )
        finally:
            stop.set()
            appender.join()
    lines = done.stdout.splitlines()
    assert len(lines) >= 2, done
    assert all(ROUND.match(line) for line in lines), lines
    assert b"timeout" not in lines[0]  # the first poll is the baseline
    # A few seconds watched: what was counted and over how long, not a per-minute extrapolation.
    rate = re.compile(
        rb"127\.0\.0\.1:%d/pool-status 5/5 \(100%%\) (\d+) timeouts? in (\d+ms|\d\.\ds) \(log\)"
        % first.port
    )
    quiet = re.compile(
        rb"127\.0\.0\.1:%d/pool-status 5/5 \(100%%\) 0 timeouts in (\d+ms|\d\.\ds) \(log\)"
        % second.port
    )
    for line in lines[1:]:
        found = rate.search(line)
        assert found is not None and int(found[1]) > 0, line
        assert quiet.search(line), line
    assert b"/min" not in done.stdout
    assert b"app-wide" not in done.stdout

    evidence = evidence_from_json(record.read_text())
    assert [len(pool.samples) for pool in evidence.pools] == [len(lines), len(lines)]
    [read] = evidence.logs
    assert any(event.event is LogEvent.POOL_TIMEOUT for event in read.events)
    code = main(["diagnose", "--evidence", str(record), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == ExitCode.CRITICAL
    assert report["findings"]
