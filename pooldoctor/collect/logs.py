"""Log collector: classify pool and PostgreSQL events in app and server logs (never raises)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, datetime, tzinfo
from typing import BinaryIO

from pooldoctor.collect.log_classify import quote_line
from pooldoctor.collect.log_reader import LONG_LINE_KEEP_BYTES, MAX_LINE_BYTES, LogStream
from pooldoctor.collect.log_scan import FileScan
from pooldoctor.collect.timestamps import TimestampReader
from pooldoctor.evidence import LogFileEvidence

STDIN_PATH = "-"
FIRST_LINE_QUOTE_CHARS = 120
# Key passes run in parallel threads (memmem releases the GIL); more than two rarely helps
# because the per-hit bookkeeping needs the GIL.
SCAN_WORKERS = max(1, min(2, os.cpu_count() or 1))


def collect_logs(
    paths: Sequence[str],
    *,
    log_tz: tzinfo,
    since: datetime | None,
    until: datetime | None,
    stdin: BinaryIO | None = None,
) -> tuple[LogFileEvidence, ...]:
    """One LogFileEvidence per path (`-` is stdin); failures become `problems`, never raise."""
    with ThreadPoolExecutor(max_workers=SCAN_WORKERS, thread_name_prefix="logscan") as pool:
        return tuple(
            _collect_one(path, log_tz=log_tz, since=since, until=until, stdin=stdin, pool=pool)
            for path in paths
        )


def _collect_one(
    path: str,
    *,
    log_tz: tzinfo,
    since: datetime | None,
    until: datetime | None,
    stdin: BinaryIO | None,
    pool: Executor,
) -> LogFileEvidence:
    try:
        if path == STDIN_PATH:
            if stdin is None and (sys.stdin is None or sys.stdin.isatty()):
                return _unreadable(path, "stdin is not a pipe or file; pipe a log into it")
            source = stdin if stdin is not None else sys.stdin.buffer
            return _scan(path, source, datetime.now(UTC), log_tz, since, until, pool)
        with open(path, "rb") as handle:
            mtime = datetime.fromtimestamp(os.fstat(handle.fileno()).st_mtime, UTC)
            return _scan(path, handle, mtime, log_tz, since, until, pool)
    except OSError as exc:
        return _unreadable(path, f"cannot read: {exc.strerror or exc}")
    except (ValueError, MemoryError) as exc:
        return _unreadable(path, f"cannot read: {exc}")
    except Exception as exc:  # the contract: a log that breaks the scanner is evidence too
        return _unreadable(path, f"could not scan: {type(exc).__name__}: {exc}")


def _unreadable(path: str, problem: str) -> LogFileEvidence:
    return LogFileEvidence(path=path, flavor="unknown", problems=(problem,))


def _scan(
    path: str,
    raw: BinaryIO,
    reference: datetime,
    log_tz: tzinfo,
    since: datetime | None,
    until: datetime | None,
    pool: Executor,
) -> LogFileEvidence:
    stream = LogStream(raw)
    reader = TimestampReader(log_tz=log_tz, reference=min(reference, datetime.now(UTC)))
    scan = FileScan(reader, since, until, executor=pool, workers=SCAN_WORKERS)
    for span in stream.spans():
        scan.scan(span)
    problems = _problems(scan, stream, reader)
    return LogFileEvidence(
        path=path,
        flavor=scan.flavor() if scan.lines else "unknown",
        lines=scan.lines,
        timestamped_lines=round(scan.timestamped),
        first=scan.first,
        last=scan.last,
        events=scan.summaries(),
        problems=tuple(problems),
    )


def _problems(scan: FileScan, stream: LogStream, reader: TimestampReader) -> list[str]:
    problems: list[str] = []
    if stream.stop_reason is not None:
        problems.append(f"{stream.stop_reason} after {scan.lines} lines; kept what was read")
    if stream.empty:
        problems.append("empty file")
    if scan.lines and round(scan.timestamped) == 0:
        first = quote_line(scan.first_line or b"", FIRST_LINE_QUOTE_CHARS)
        problems.append(
            f"no timestamp recognised in {scan.lines} lines; first line: {first!r}; events are "
            "counted without times and --since/--until cannot apply"
        )
    if scan.undecodable:
        problems.append(
            f"{scan.undecodable} undecodable byte sequence(s) (not UTF-8), read with replacement"
        )
    if stream.long_lines:
        problems.append(
            f"{stream.long_lines} line(s) longer than {MAX_LINE_BYTES // 1024 // 1024} MiB cut "
            f"to their first {LONG_LINE_KEEP_BYTES // 1024} KiB"
        )
    if scan.skipped_lines or scan.skipped_events:
        problems.append(
            f"{scan.skipped_lines} line(s) and {scan.skipped_events} event(s) outside "
            "--since/--until skipped"
        )
    for zone in sorted(reader.ambiguous_zones):
        problems.append(f"time zone abbreviation {zone} is ambiguous; read as --log-tz")
    if scan.minutes_truncated():
        problems.append("per-minute counts truncated (too many distinct minutes)")
    return problems
