"""Log collector on real files: formats, flavors, tracebacks, gzip, damage, windows, stdin."""

from __future__ import annotations

import gzip
import io
import os
from datetime import UTC, datetime
from pathlib import Path

from pooldoctor.collect.logs import collect_logs
from pooldoctor.collect.logs.reader import LogStream
from pooldoctor.collect.logs.scan import FileScan
from pooldoctor.collect.logs.timestamps import TimestampReader
from pooldoctor.evidence import LogEvent as E
from pooldoctor.evidence import LogFileEvidence

DATA = Path(__file__).parent / "data" / "logs"


def utc(year: int, month: int, day: int, *clock: int) -> datetime:
    hour, minute, second, micros = (*clock, 0, 0, 0, 0)[:4]
    return datetime(year, month, day, hour, minute, second, micros, tzinfo=UTC)


def collect(path: Path | str, **kwargs: object) -> LogFileEvidence:
    options: dict[str, object] = {"log_tz": UTC, "since": None, "until": None, **kwargs}
    (result,) = collect_logs([str(path)], **options)  # type: ignore[arg-type]
    return result


def counts(log: LogFileEvidence) -> dict[E, int]:
    return {summary.event: summary.count for summary in log.events}


def test_python_app_log_with_tracebacks() -> None:
    log = collect(DATA / "app.log")
    assert log.flavor == "python"
    assert (log.lines, log.timestamped_lines) == (11, 5)
    assert (log.first, log.last) == (utc(2024, 12, 5, 9, 30, 1, 123000), utc(2024, 12, 5, 9, 32))
    assert counts(log) == {E.POOL_TIMEOUT: 2, E.GC_CLEANUP: 1, E.CONNECT_TIMEOUT: 1}
    pool = next(s for s in log.events if s.event is E.POOL_TIMEOUT)
    # The traceback's last line takes the timestamp of the ERROR line it belongs to; the record
    # that repeats the message in its own traceback counts once.
    assert (pool.first, pool.last) == (
        utc(2024, 12, 5, 9, 30, 2, 456000),
        utc(2024, 12, 5, 9, 31, 30, 500000),
    )
    assert [(m.minute, m.count) for m in pool.per_minute] == [
        (utc(2024, 12, 5, 9, 30), 1),
        (utc(2024, 12, 5, 9, 31), 1),
    ]
    assert pool.examples[0].startswith("sqlalchemy.exc.TimeoutError: QueuePool limit of size 5")
    connect = next(s for s in log.events if s.event is E.CONNECT_TIMEOUT)
    assert "hunter2" not in connect.examples[0] and "app:***@db" in connect.examples[0]
    assert log.problems == ()


def test_postgresql_server_log_every_kind() -> None:
    log = collect(DATA / "postgresql.log")
    assert log.flavor == "postgresql"
    assert log.lines == log.timestamped_lines == 18
    assert counts(log) == {
        E.SERVER_START: 1, E.TOO_MANY_CLIENTS: 1, E.ROLE_LIMIT: 1, E.STATEMENT_TIMEOUT: 1,
        E.LOCK_TIMEOUT: 1, E.DEADLOCK: 1, E.LOCK_WAIT: 1, E.IDLE_IN_TRANSACTION_TIMEOUT: 1,
        E.IDLE_SESSION_TIMEOUT: 1, E.ADMIN_SHUTDOWN: 1, E.CLIENT_EOF_IN_TRANSACTION: 1,
        E.CANNOT_CONNECT_NOW: 1, E.READ_ONLY: 1, E.PREPARED_STATEMENT: 1, E.SERVER_SHUTDOWN: 1,
    }  # fmt: skip


def test_gunicorn_json_syslog_and_access_flavors(tmp_path: Path) -> None:
    gunicorn = collect(DATA / "gunicorn.log")
    assert gunicorn.flavor == "gunicorn"
    assert counts(gunicorn) == {E.PSYCOPG_POOL_TIMEOUT: 1, E.PSYCOPG_POOL_QUEUE_FULL: 1}
    assert gunicorn.events[0].first in (utc(2024, 12, 5, 8, 30, 9), utc(2024, 12, 5, 8, 30, 10))

    json_log = collect(DATA / "json.log")
    assert json_log.flavor == "json"
    assert counts(json_log) == {E.STATEMENT_TIMEOUT: 1, E.DEADLOCK: 1, E.LOCK_TIMEOUT: 1}
    assert json_log.last == utc(2024, 12, 5, 9, 30, 4)
    assert next(s for s in json_log.events if s.event is E.DEADLOCK).first == utc(
        2024, 12, 5, 9, 30, 3, 500000
    )

    syslog = tmp_path / "postgresql-syslog"
    syslog.write_bytes((DATA / "syslog.log").read_bytes())
    stamp = utc(2025, 1, 10).timestamp()
    os.utime(syslog, (stamp, stamp))
    log = collect(syslog)
    assert log.flavor == "syslog"
    assert counts(log) == {E.TOO_MANY_CLIENTS: 1, E.RESERVED_SLOTS: 1}
    assert log.first == utc(2024, 12, 5, 9, 30, 1)

    access = collect(DATA / "access.log")
    assert access.flavor == "access"
    (summary,) = access.events
    assert (summary.event, summary.count) == (E.HTTP_5XX, 2)
    assert [(m.minute, m.count) for m in summary.per_minute] == [
        (utc(2024, 12, 5, 9, 30), 1),
        (utc(2024, 12, 5, 9, 31), 1),
    ]


def test_mixed_file_and_naive_times_in_log_tz(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.log"
    mixed.write_bytes((DATA / "app.log").read_bytes() + (DATA / "postgresql.log").read_bytes())
    assert collect(mixed).flavor == "mixed"
    from zoneinfo import ZoneInfo

    log = collect(DATA / "app.log", log_tz=ZoneInfo("Europe/Berlin"))
    assert log.first == utc(2024, 12, 5, 8, 30, 1, 123000)


def test_gzip_by_magic_bytes_not_extension(tmp_path: Path) -> None:
    packed = tmp_path / "app.log.1"
    packed.write_bytes(gzip.compress((DATA / "postgresql.log").read_bytes()))
    log = collect(packed)
    assert log.lines == 18 and counts(log)[E.DEADLOCK] == 1 and log.problems == ()


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    lines = b"".join(
        b"2024-12-05 09:%02d:%02d,000 ERROR app: canceling statement due to statement timeout %d\n"
        % (i // 60 % 60, i % 60, i)
        for i in range(50_000)
    )
    packed = gzip.compress(lines)
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    log = collect(cut)
    assert 0 < log.lines < 50_000
    (problem,) = log.problems
    assert problem.startswith("gzip stream truncated after ")
    assert counts(log)[E.STATEMENT_TIMEOUT] >= log.lines - 1


def test_undecodable_bytes_are_counted_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "latin1.log"
    path.write_bytes(
        b"2024-12-05 09:30:01,000 ERROR caf\xe9: deadlock detected \xff\xfe\n"
        b"2024-12-05 09:30:02,000 INFO ok \xc3\xa9\n"
    )
    log = collect(path)
    assert counts(log) == {E.DEADLOCK: 1}
    assert "caf\ufffd" in log.events[0].examples[0]
    assert log.problems == ("3 undecodable byte sequence(s) (not UTF-8), read with replacement",)


def test_five_megabyte_line_is_cut_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "huge.log"
    huge = b"2024-12-05 09:30:01,000 ERROR app: deadlock detected " + b"x" * (5 * 1024 * 1024)
    path.write_bytes(huge + b"\n2024-12-05 09:30:02,000 ERROR app: deadlock detected\n")
    log = collect(path)
    assert log.lines == 2
    assert counts(log) == {E.DEADLOCK: 2}
    assert log.problems == ("1 line(s) longer than 1 MiB cut to their first 64 KiB",)
    assert all(len(example) <= 300 for example in log.events[0].examples)
    single = tmp_path / "single.log"
    single.write_bytes(huge)  # no newline at all
    assert collect(single).problems == ("1 line(s) longer than 1 MiB cut to their first 64 KiB",)


def test_empty_missing_and_untimestamped_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert collect(empty).problems == ("empty file",)
    missing = collect(tmp_path / "missing.log")
    assert missing.problems == ("cannot read: No such file or directory",)
    assert missing.lines == 0
    assert collect(tmp_path).problems[0].startswith("cannot read: ")
    plain = tmp_path / "plain.log"
    plain.write_bytes(b"worker started\nERROR deadlock detected\nbye\n")
    log = collect(plain)
    assert log.timestamped_lines == 0 and log.first is None
    assert counts(log) == {E.DEADLOCK: 1}
    assert log.problems[0] == (
        "no timestamp recognised in 3 lines; first line: 'worker started'; events are counted "
        "without times and --since/--until cannot apply"
    )


def test_since_and_until_skip_lines_and_events() -> None:
    log = collect(
        DATA / "postgresql.log", since=utc(2024, 12, 5, 9, 30, 3), until=utc(2024, 12, 5, 9, 30, 6)
    )
    assert counts(log) == {E.STATEMENT_TIMEOUT: 1, E.LOCK_TIMEOUT: 1, E.DEADLOCK: 1}
    assert log.problems == ("13 line(s) and 12 event(s) outside --since/--until skipped",)
    before = collect(DATA / "postgresql.log", until=utc(2024, 12, 5))
    assert before.events == ()
    assert before.problems == ("18 line(s) and 0 event(s) outside --since/--until skipped",)


def test_stdin_plain_and_gzip() -> None:
    data = (DATA / "postgresql.log").read_bytes()
    (plain, packed) = collect_logs(
        ["-"], log_tz=UTC, since=None, until=None, stdin=io.BytesIO(data)
    ) + collect_logs(
        ["-"], log_tz=UTC, since=None, until=None, stdin=io.BytesIO(gzip.compress(data))
    )
    assert plain.path == "-" and plain.lines == 18 and counts(plain)[E.DEADLOCK] == 1
    assert packed.lines == 18 and counts(packed) == counts(plain)


def test_records_and_counts_survive_span_boundaries() -> None:
    record = (DATA / "app.log").read_bytes()
    data = record * 200
    scan = FileScan(TimestampReader(UTC, utc(2025, 1, 1)), None, None)
    stream = LogStream(io.BytesIO(data), chunk_bytes=997)  # spans end mid-traceback
    for span in stream.spans():
        scan.scan(span)
    whole = collect_logs(["-"], log_tz=UTC, since=None, until=None, stdin=io.BytesIO(data))[0]
    assert scan.lines == whole.lines == 2200
    assert {s.event: s.count for s in scan.summaries()} == counts(whole) == {
        E.POOL_TIMEOUT: 400, E.GC_CLEANUP: 200, E.CONNECT_TIMEOUT: 200
    }  # fmt: skip
