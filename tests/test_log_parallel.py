"""Scans of byte ranges in worker processes merge to exactly what one sequential scan finds."""

from __future__ import annotations

import io
import random
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from pooldoctor.collect.logs import collect_logs
from pooldoctor.collect.logs.parallel import (
    PARALLEL_MIN_BYTES,
    ScanSettings,
    _context,
    _stop_workers,
    merge_tallies,
    scan_parallel,
    scan_range,
)
from pooldoctor.collect.logs.reader import LogStream
from pooldoctor.collect.logs.records import read_app_log
from pooldoctor.collect.logs.scan import EventTally, FileScan
from pooldoctor.collect.logs.search import make_finder
from pooldoctor.collect.logs.timestamps import TimestampReader
from pooldoctor.evidence import AppLogFacts
from pooldoctor.evidence import LogEvent as E

START = datetime(2024, 12, 5, 9, 0, tzinfo=UTC)
REFERENCE = datetime(2025, 1, 1, tzinfo=UTC)
CHUNK = 4096  # small chunks: many boundaries, tracebacks and lines straddling them
ERRORS = (
    "sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached, connection "
    "timed out, timeout 30.00",
    "psycopg_pool.PoolTimeout: couldn't get a connection after 30.00 sec",
    "psycopg.OperationalError: server closed the connection unexpectedly",
)
PG_EVENTS = (
    "FATAL:  sorry, too many clients already",
    "ERROR:  deadlock detected",
    "LOG:  process 42 still waiting for ShareLock on transaction 7 after 1000.1 ms",
    "ERROR:  canceling statement due to statement timeout",
)


def _record(rng: random.Random, moment: datetime) -> list[str]:
    py = moment.strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    pg = moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    access = moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
    roll = rng.random()
    if roll < 0.15:
        error = rng.choice(ERRORS)  # repeated in its own traceback: must count once
        return [f"{py} ERROR shop: {error}", "Traceback (most recent call last):",
                '  File "/app/views.py", line 7, in handler', f"{error}"]  # fmt: skip
    if roll < 0.3:
        return [f"{pg} [42] app@shop {rng.choice(PG_EVENTS)}"]
    if roll < 0.4:
        return [f'10.0.0.7 - - [{access}] "GET /api/orders HTTP/1.1" 503 0 "-" "curl"']
    if roll < 0.42:
        return [f"{py} INFO shop: caf\xe9 \udcff"]  # not UTF-8 once encoded with surrogates
    return [f"{py} INFO shop: GET /api/items 200 in {rng.randint(1, 900)}ms"]


def _write_log(path: Path, records: int) -> Path:
    rng = random.Random(20241205)
    moment = START
    lines: list[str] = []
    for _ in range(records):
        moment += timedelta(seconds=rng.uniform(0.1, 9.0))
        lines.extend(_record(rng, moment))
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
    return path


def _sequential(path: Path, since: datetime | None, until: datetime | None) -> FileScan:
    scan = FileScan(TimestampReader(UTC, REFERENCE), since, until)
    with path.open("rb") as handle:
        for span in LogStream(handle, chunk_bytes=CHUNK).spans():
            scan.scan(span)
    return scan


def _facts(scan: FileScan) -> tuple[object, ...]:
    return (
        scan.lines,
        round(scan.timestamped),
        scan.first,
        scan.last,
        scan.first_line,
        dict(scan.flavors),
        scan.summaries(),
        scan.undecodable,
        scan.skipped_lines,
        scan.skipped_events,
    )


WINDOWS = [
    (None, None),
    (START + timedelta(minutes=20), START + timedelta(minutes=50)),
]


@pytest.mark.parametrize("parts", [2, 5])
@pytest.mark.parametrize(("since", "until"), WINDOWS)
def test_parallel_scan_equals_sequential_scan(
    tmp_path: Path, parts: int, since: datetime | None, until: datetime | None
) -> None:
    path = _write_log(tmp_path / "mixed.log", 3000)
    settings = ScanSettings(str(path), UTC, REFERENCE, since, until, chunk_bytes=CHUNK)
    with path.open("rb") as handle:
        whole = scan_parallel(settings, handle, path.stat().st_size, parts=parts, min_bytes=0)
    assert whole is not None and whole.stop_reason is None
    expected = _sequential(path, since, until)
    assert _facts(whole.scan) == _facts(expected)
    assert sum(t.count for t in expected.tallies.values()) > (300 if since is None else 100)
    assert expected.undecodable > 0
    if since is not None:
        assert expected.skipped_lines > 0 and expected.skipped_events > 0


def test_a_file_without_timestamps_is_not_split(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_bytes(b"deadlock detected somewhere\n" * 2000)
    settings = ScanSettings(str(path), UTC, REFERENCE, None, None, chunk_bytes=CHUNK)
    with path.open("rb") as handle:
        assert scan_parallel(settings, handle, path.stat().st_size, parts=2, min_bytes=0) is None


def test_collect_logs_splits_a_large_file_with_the_same_result(tmp_path: Path) -> None:
    small = _write_log(tmp_path / "small.log", 3000).read_bytes()
    path = tmp_path / "large.log"
    path.write_bytes(small * (PARALLEL_MIN_BYTES // len(small) + 1))
    (parallel,) = collect_logs([str(path)], log_tz=UTC, since=None, until=None)
    with path.open("rb") as handle:  # stdin is always scanned in one go
        (sequential,) = collect_logs(["-"], log_tz=UTC, since=None, until=None, stdin=handle)
    assert parallel.events == sequential.events and parallel.lines == sequential.lines
    assert (parallel.first, parallel.last) == (sequential.first, sequential.last)
    assert parallel.problems == sequential.problems != ()  # the undecodable bytes


@pytest.mark.parametrize("total", range(9))
def test_merged_tallies_keep_the_examples_of_one_tally(total: int) -> None:
    lines = [f"line {index}".encode() for index in range(total)]
    for split in range(total + 1):
        one, first, second = EventTally(), EventTally(), EventTally()
        for index, line in enumerate(lines):
            moment = START + timedelta(minutes=index)
            one.add(moment, line)
            (first if index < split else second).add(moment, line)
        merge_tallies(first, second)
        assert first.summary(E.DEADLOCK) == one.summary(E.DEADLOCK)


def test_events_after_a_nul_byte_are_found() -> None:
    data = b"2024-12-05 09:30:00,000 INFO a\x00b\n2024-12-05 09:30:01,000 ERROR deadlock detected\n"
    (log,) = collect_logs(["-"], log_tz=UTC, since=None, until=None, stdin=io.BytesIO(data))
    assert [(s.event, s.count) for s in log.events] == [(E.DEADLOCK, 1)]


@pytest.mark.parametrize("text", [b"ab closed cd closed\nclosed", b"ab\x00closed\n closed", b""])
def test_finder_agrees_with_bytes_find(text: bytes) -> None:
    buffer = b"closed " + text + b" tail closed"
    for start in range(len(buffer)):
        for end in range(start, len(buffer) + 1):
            find = make_finder(buffer, start, end)
            assert find(b"closed", start, end) == buffer.find(b"closed", start, end)


def test_a_split_file_stops_at_its_shared_time_cap(tmp_path: Path) -> None:
    path = _write_log(tmp_path / "mixed.log", 3000)
    expired = time.monotonic() - 1  # the cap is shared: a range started late has no more time
    settings = ScanSettings(
        str(path), UTC, REFERENCE, None, None, chunk_bytes=CHUNK, seconds=0.5, deadline=expired
    )
    with path.open("rb") as handle:
        whole = scan_parallel(settings, handle, path.stat().st_size, parts=3, min_bytes=0)
    assert whole is not None and whole.stop_reason == "time limit (0.5s) reached"
    assert 0 < whole.scan.lines < _sequential(path, None, None).lines
    later = scan_range(settings, path.stat().st_size // 2, None)  # what a worker process runs
    assert later.stop_reason == "time limit (0.5s) reached"
    assert later.scan.lines < _sequential(path, None, None).lines // 2


def test_stopping_a_parallel_scan_terminates_its_worker_processes() -> None:
    pool = ProcessPoolExecutor(max_workers=2, mp_context=_context())
    for _ in range(2):
        pool.submit(time.sleep, 120)  # a range scan that would go on for minutes
    processes = list(pool._processes.values())
    assert processes
    _stop_workers(pool)  # what Ctrl-C or SIGTERM during the scan runs
    for process in processes:
        process.join(30)  # a bound, not a speed claim: a stopped worker ends at once
        # The executor's own thread may reap the worker first, leaving exitcode unset here.
        reaped_elsewhere = process.exitcode is None and not Path(f"/proc/{process.pid}").exists()
        assert reaped_elsewhere or process.exitcode in (-signal.SIGTERM, -signal.SIGKILL)


def _failing_app_facts() -> AppLogFacts | None:
    raise OSError("no such process")  # raised in the worker, and again when run here


def test_app_log_records_are_read_in_a_side_process(tmp_path: Path) -> None:
    path = _write_log(tmp_path / "mixed.log", 3000)
    settings = ScanSettings(str(path), UTC, REFERENCE, None, None, chunk_bytes=CHUNK)
    task = partial(read_app_log, str(path), log_tz=UTC, reference=REFERENCE, since=None,
                   until=None)  # fmt: skip
    with path.open("rb") as handle:
        whole = scan_parallel(
            settings, handle, path.stat().st_size, parts=2, min_bytes=0, app_facts=task
        )
    assert whole is not None and whole.app is not None
    assert whole.app == task() and len(whole.app.exceptions) > 100
    with path.open("rb") as handle, pytest.raises(OSError, match="no such process"):
        scan_parallel(settings, handle, path.stat().st_size, parts=2, min_bytes=0,
                      app_facts=_failing_app_facts)  # fmt: skip
