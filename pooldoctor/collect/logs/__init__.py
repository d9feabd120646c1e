"""Log collector: classify pool and PostgreSQL events in app and server logs (never raises)."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from functools import partial
from typing import BinaryIO

from pooldoctor.collect.inputs import DeadlineReader, open_regular
from pooldoctor.collect.logs.catalog import quote_line
from pooldoctor.collect.logs.parallel import (
    PARALLEL_MIN_BYTES,
    AppFactsTask,
    RangeScan,
    ScanSettings,
    scan_parallel,
    scan_range,
)
from pooldoctor.collect.logs.reader import (
    BINARY_REASON,
    BINARY_SNIFF_BYTES,
    GZIP_MAGIC,
    LOG_SCAN_SECONDS,
    LONG_LINE_KEEP_BYTES,
    MAX_LINE_BYTES,
    LogStream,
    Readable,
    looks_binary,
)
from pooldoctor.collect.logs.records import read_app_log
from pooldoctor.collect.logs.scan import FileScan
from pooldoctor.collect.logs.seek import Window, find_window
from pooldoctor.collect.logs.timestamps import TimestampReader
from pooldoctor.evidence import AppLogFacts, LogFileEvidence

STDIN_PATH = "-"
FIRST_LINE_QUOTE_CHARS = 120
# In a one-process scan (stdin, gzip, small files) key passes run in threads (the libc search
# releases the GIL); more than two rarely helps because the per-hit bookkeeping needs the GIL.
SCAN_WORKERS = max(1, min(2, os.cpu_count() or 1))
# Smaller plain files are scanned whole even with --since/--until: seeking would save little.
SEEK_MIN_BYTES = 1024 * 1024
MIB = 1024 * 1024


def collect_logs(
    paths: Sequence[str],
    *,
    log_tz: tzinfo,
    since: datetime | None,
    until: datetime | None,
    stdin: BinaryIO | None = None,
    seek: bool = True,
) -> tuple[LogFileEvidence, ...]:
    """One LogFileEvidence per path (`-` is stdin); failures become `problems`, never raise.

    With --since/--until, a plain file is bisected to the window (see seek.py) unless `seek` is
    False; gzip files and stdin are always streamed whole.
    """
    return tuple(
        _collect_one(path, log_tz=log_tz, since=since, until=until, stdin=stdin, seek=seek)
        for path in paths
    )


def _collect_one(
    path: str,
    *,
    log_tz: tzinfo,
    since: datetime | None,
    until: datetime | None,
    stdin: BinaryIO | None,
    seek: bool = True,
) -> LogFileEvidence:
    try:
        if path == STDIN_PATH:
            if stdin is None and (sys.stdin is None or sys.stdin.isatty()):
                return _unreadable(path, "stdin is not a pipe or file; pipe a log into it")
            source = stdin if stdin is not None else sys.stdin.buffer
            reference = datetime.now(UTC)
            # A pipe that stalls stops the scan at the time cap instead of hanging it.
            waiting = DeadlineReader(source, LOG_SCAN_SECONDS)
            return _scan(path, waiting, reference, log_tz, since, until)
        with open_regular(path) as handle:
            scanned, facts = _scan_file(path, handle, log_tz, since, until, seek)
        return replace(scanned, app=facts) if facts is not None and _has_records(facts) else scanned
    except OSError as exc:
        return _unreadable(path, f"cannot read: {exc.strerror or exc}")
    except (ValueError, MemoryError) as exc:
        return _unreadable(path, f"cannot read: {exc}")
    except Exception as exc:  # the contract: a log that breaks the scanner is evidence too
        return _unreadable(path, f"could not scan: {type(exc).__name__}: {exc}")


def _scan_file(
    path: str,
    handle: BinaryIO,
    log_tz: tzinfo,
    since: datetime | None,
    until: datetime | None,
    seek: bool = True,
) -> tuple[LogFileEvidence, AppLogFacts | None]:
    """A plain regular file is bisected to --since/--until, a large one split over processes
    (its app-log records read in one more meanwhile); anything else is read in one go."""
    status = os.fstat(handle.fileno())
    reference = min(datetime.fromtimestamp(status.st_mtime, UTC), datetime.now(UTC))
    plain = stat.S_ISREG(status.st_mode) and not _gzipped(handle)
    settings = ScanSettings(path, log_tz, reference, since, until, seconds=LOG_SCAN_SECONDS)
    app_facts = partial(
        read_app_log, path, log_tz=log_tz, reference=reference, since=since, until=until
    )
    if plain and status.st_size >= PARALLEL_MIN_BYTES:
        if looks_binary(handle.read(BINARY_SNIFF_BYTES)):
            return _unreadable(path, BINARY_REASON), None  # a huge zeroed or random file
        handle.seek(0)
    if plain and seek and (since or until) and status.st_size >= SEEK_MIN_BYTES:
        reader = TimestampReader(log_tz=log_tz, reference=reference)
        window = find_window(handle, status.st_size, reader, since, until)
        if window is not None:
            window_facts = app_facts(end=window.end)
            return _scan_window(settings, handle, status.st_size, window), window_facts
        handle.seek(0)
    if plain and status.st_size >= PARALLEL_MIN_BYTES:
        whole = _scan_parallel(settings, handle, status.st_size, app_facts=app_facts)
        if whole is not None:
            problems = _problems(whole.scan, whole.stop_reason, False, whole.long_lines)
            return _evidence(path, whole.scan, problems), whole.app
        handle.seek(0)
    return _scan(path, handle, reference, log_tz, since, until), app_facts()


def _has_records(facts: AppLogFacts) -> bool:
    return bool(facts.exceptions or facts.requests or facts.moments)


def _gzipped(handle: BinaryIO) -> bool:
    head = handle.read(len(GZIP_MAGIC))
    handle.seek(0)
    return head == GZIP_MAGIC


def _scan_parallel(
    settings: ScanSettings,
    handle: BinaryIO,
    size: int,
    start: int = 0,
    end: int | None = None,
    app_facts: AppFactsTask | None = None,
) -> RangeScan | None:
    try:
        return scan_parallel(settings, handle, size, start=start, end=end, app_facts=app_facts)
    except (OSError, BrokenProcessPool):  # processes unavailable here: scan in this one
        return None


def _scan_window(
    settings: ScanSettings, handle: BinaryIO, size: int, window: Window
) -> LogFileEvidence:
    """Scan only the bytes the window search found; the file's first and last stamps come
    from its probes, its line counts cover the scanned part."""
    ranged = _scan_parallel(settings, handle, size, window.start, window.end)
    if ranged is None:
        ranged = scan_range(settings, window.start, window.end)
    scan = ranged.scan
    for moment in (window.head, window.tail):
        if moment is not None:
            scan.first = moment if scan.first is None else min(scan.first, moment)
            scan.last = moment if scan.last is None else max(scan.last, moment)
    problems = _problems(scan, ranged.stop_reason, False, ranged.long_lines)
    stop = size if window.end is None else window.end
    problems.insert(
        0,
        f"seeked to the --since/--until window: scanned {(stop - window.start) / MIB:.1f} of "
        f"{size / MIB:.1f} MiB (bytes {window.start}-{stop}, {window.probes} probes); "
        "line counts cover that part",
    )
    return _evidence(settings.path, scan, problems)


def _unreadable(path: str, problem: str) -> LogFileEvidence:
    return LogFileEvidence(path=path, flavor="unknown", problems=(problem,))


def _scan(
    path: str,
    raw: Readable,
    reference: datetime,
    log_tz: tzinfo,
    since: datetime | None,
    until: datetime | None,
) -> LogFileEvidence:
    stream = LogStream(raw)
    reader = TimestampReader(log_tz=log_tz, reference=reference)
    # Threads live only as long as this scan: a later parallel scan may then fork safely.
    with ThreadPoolExecutor(max_workers=SCAN_WORKERS, thread_name_prefix="logscan") as pool:
        scan = FileScan(reader, since, until, executor=pool, workers=SCAN_WORKERS)
        for span in stream.spans():
            scan.scan(span)
            del span  # see LogStream.spans
    problems = _problems(scan, stream.stop_reason, stream.empty, stream.long_lines)
    return _evidence(path, scan, problems)


def _evidence(path: str, scan: FileScan, problems: list[str]) -> LogFileEvidence:
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


def _problems(scan: FileScan, stop_reason: str | None, empty: bool, long_lines: int) -> list[str]:
    problems: list[str] = []
    if stop_reason is not None:
        problems.append(f"{stop_reason} after {scan.lines} lines; kept what was read")
    if empty:
        problems.append("empty file")
    if scan.lines and round(scan.timestamped) == 0:
        first = quote_line(scan.first_line or b"", FIRST_LINE_QUOTE_CHARS)
        problems.append(
            f"no timestamp recognised in {scan.lines} lines; first line: {first!r}; events are "
            "counted without times and --since/--until cannot apply"
        )
    if scan.bad_stamps:
        example = quote_line(scan.bad_stamp_line or b"", FIRST_LINE_QUOTE_CHARS)
        problems.append(
            f"{scan.bad_stamps} line(s) with an impossible timestamp (offset or date out of "
            f"range) read as undated; e.g. {example!r}"
        )
    if scan.undecodable:
        problems.append(
            f"{scan.undecodable} undecodable byte sequence(s) (not UTF-8), read with replacement"
        )
    if long_lines:
        problems.append(
            f"{long_lines} line(s) longer than {MAX_LINE_BYTES // 1024 // 1024} MiB cut "
            f"to their first {LONG_LINE_KEEP_BYTES // 1024} KiB"
        )
    if scan.skipped_lines or scan.skipped_events:
        problems.append(
            f"{scan.skipped_lines} line(s) and {scan.skipped_events} event(s) outside "
            "--since/--until skipped"
        )
    for zone in sorted(scan.reader.ambiguous_zones):
        problems.append(f"time zone abbreviation {zone} is ambiguous; read as --log-tz")
    if scan.minutes_truncated():
        problems.append("per-minute counts truncated (too many distinct minutes)")
    return problems
