"""Scan a large plain log file on several cores: one process per byte range, merged in order.

A range starts where a whole-file scan would start a span (the line that straddles a chunk
boundary, or the boundary itself) and only at a line with a timestamp, so no record, no
traceback and no span is cut differently than in one sequential scan, and the merged result
equals that of one sequential scan. The calling process scans the first range itself.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from multiprocessing.context import BaseContext
from typing import BinaryIO

from pooldoctor.collect.logs.newlines import preload
from pooldoctor.collect.logs.reader import (
    CHUNK_BYTES,
    LOG_SCAN_SECONDS,
    MAX_LINE_BYTES,
    AlignedRange,
    LogStream,
)
from pooldoctor.collect.logs.scan import (
    FIRST_EXAMPLES,
    LAST_EXAMPLES,
    MAX_MINUTES_PER_EVENT,
    EventTally,
    FileScan,
)
from pooldoctor.collect.logs.timestamps import TimestampReader
from pooldoctor.evidence import AppLogFacts

AppFactsTask = Callable[[], AppLogFacts | None]

# Below these a second process costs more to start than it saves: one process scans about
# 250 MiB/s; a forked one starts in milliseconds, a spawned one in about 0.3 s (it imports).
PARALLEL_MIN_BYTES = 32 * 1024 * 1024
SPAWN_MIN_BYTES = 256 * 1024 * 1024
MAX_PROCESSES = 8  # memory stays bounded: each process holds about two chunks
STOP_WAIT_SECONDS = 1.0  # a terminated worker is gone well within this
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MALLOC_KEEP_BYTES = 2 * CHUNK_BYTES + MAX_LINE_BYTES  # a chunk, the next, a carried line


@dataclass
class RangeScan:
    """What scanning one byte range showed, and how its stream ended."""

    scan: FileScan
    long_lines: int = 0
    stop_reason: str | None = None
    app: AppLogFacts | None = None  # what the side task found, when one was given


@dataclass(frozen=True)
class ScanSettings:
    """What every range scan of one file needs to know."""

    path: str
    log_tz: tzinfo
    reference: datetime
    since: datetime | None
    until: datetime | None
    chunk_bytes: int = CHUNK_BYTES
    seconds: float = LOG_SCAN_SECONDS  # the whole file's time cap, shared by its ranges
    deadline: float | None = None  # time.monotonic() (system-wide) at which every range stops


def process_count() -> int:
    """How many processes a parallel scan uses: one per core this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    return max(1, min(MAX_PROCESSES, cores))


def scan_parallel(
    settings: ScanSettings,
    handle: BinaryIO,
    size: int,
    *,
    start: int = 0,
    end: int | None = None,
    parts: int | None = None,
    min_bytes: int | None = None,
    app_facts: AppFactsTask | None = None,
) -> RangeScan | None:
    """The scan of bytes [start, end) of the file (by default all of it), or None when that
    cannot be split (then scan it in one go).

    `parts` ranges (default: one per core) are scanned by parts - 1 processes and this one.
    `app_facts` (picklable) runs in one more process meanwhile; its result is the scan's `app`.
    """
    parts = process_count() if parts is None else parts
    context = _context()
    if min_bytes is None:
        forked = context.get_start_method() == "fork"
        min_bytes = PARALLEL_MIN_BYTES if forked else SPAWN_MIN_BYTES
    stop = size if end is None else end
    if parts < 2 or stop - start < min_bytes:
        return None
    probe = TimestampReader(log_tz=settings.log_tz, reference=settings.reference)
    offsets = split_offsets(handle, size, parts, settings.chunk_bytes, probe, start, stop)
    if not offsets:
        return None
    starts = [start, *offsets]
    ends: list[int | None] = [*offsets, end]  # None: the last range reads what the file holds
    ranges = list(zip(starts, ends, strict=True))
    if settings.deadline is None:
        settings = replace(settings, deadline=time.monotonic() + settings.seconds)
    workers = len(ranges) - 1 + (app_facts is not None)
    preload()  # before forking: the workers inherit numpy instead of importing it each
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=keep_freed_blocks
    ) as pool:
        try:
            futures = [pool.submit(scan_range, settings, start, end) for start, end in ranges[1:]]
            side = None if app_facts is None else pool.submit(app_facts)
            results = [scan_range(settings, *ranges[0])]
            for future, (start, end) in zip(futures, ranges[1:], strict=True):
                results.append(_outcome(future, settings, start, end))
            app = None if app_facts is None or side is None else _side_outcome(side, app_facts)
        except BaseException:  # Ctrl-C or SIGTERM: stop the other scans now, not at their end
            _stop_workers(pool)
            raise
    merged = results[0]
    for later in results[1:]:
        if merged.stop_reason is not None:
            break  # a sequential scan would have stopped there too
        merge_scans(merged.scan, later.scan)
        merged.long_lines += later.long_lines
        merged.stop_reason = later.stop_reason
    merged.app = app
    return merged


def scan_range(settings: ScanSettings, start: int, end: int | None) -> RangeScan:
    """Scan bytes [start, end) of the file (end None: to its end) as a whole-file scan would."""
    reader = TimestampReader(log_tz=settings.log_tz, reference=settings.reference)
    scan = FileScan(reader, settings.since, settings.until, consumed=start)
    with open(settings.path, "rb") as handle:
        chunk = settings.chunk_bytes
        stream = LogStream(
            AlignedRange(handle, start, end, chunk),
            chunk,
            plain=True,
            seconds=settings.seconds,
            deadline=settings.deadline,
        )
        for span in stream.spans():
            scan.scan(span)
            del span  # see LogStream.spans
    scan.drop_caches()
    return RangeScan(scan, stream.long_lines, stream.stop_reason)


def keep_freed_blocks() -> None:
    """In a scan worker: let malloc keep freed chunk buffers for the next read.

    glibc returns a freed 16 MiB buffer to the kernel, and the next read into a new one
    faults in 4096 fresh pages (about 3 us each here). With the mmap threshold above a chunk
    the buffers come from the heap and stay mapped (measured: 9.7k faults down to 5.3k, about
    7 ms less CPU per 64 MiB range). Not glibc: nothing to do.
    """
    if sys.platform != "linux":
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MALLOC_KEEP_BYTES)
    mallopt(M_TRIM_THRESHOLD, 2 * MALLOC_KEEP_BYTES)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    # The processes first: shutdown() forgets them, and they would scan on to their range's end.
    processes = list((pool._processes or {}).values())
    for process in processes:
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(STOP_WAIT_SECONDS)
        if process.is_alive():  # SIGTERM not acted on yet (still starting up): no second chance
            process.kill()
            process.join(STOP_WAIT_SECONDS)


def _outcome(
    future: Future[RangeScan], settings: ScanSettings, start: int, end: int | None
) -> RangeScan:
    try:
        return future.result()
    except Exception:  # the worker died, could not start or pickle: scan the range here
        return scan_range(settings, start, end)


def _side_outcome(future: Future[AppLogFacts | None], task: AppFactsTask) -> AppLogFacts | None:
    try:
        return future.result()
    except Exception:  # the process died or could not start: run the task here
        return task()


def _context() -> BaseContext:
    # fork starts in milliseconds but is unsafe while other threads may hold locks
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


# --- where to split ----------------------------------------------------------------------------

PROBE_BYTES = 64 * 1024  # of a line's start, more than any timestamp reader looks at (4 KiB)
CANDIDATE_BOUNDARIES = 8  # chunk boundaries tried around each ideal split point


def split_offsets(
    handle: BinaryIO,
    size: int,
    parts: int,
    chunk_bytes: int,
    reader: TimestampReader,
    low: int = 0,
    high: int | None = None,
) -> list[int]:
    """Ascending offsets in (low, high) where ranges after the first start; fewer than
    parts - 1 if need be."""
    high = size if high is None else high
    boundaries = (size - 1) // chunk_bytes  # chunk boundaries strictly inside the file
    offsets: list[int] = []
    for part in range(1, parts):
        ideal = round((low + (high - low) * part / parts) / chunk_bytes) or 1  # nearest even
        for step in range(CANDIDATE_BOUNDARIES):
            index = ideal + (step + 1) // 2 * (1 if step % 2 else -1)
            if not 1 <= index <= boundaries or not low < index * chunk_bytes < high:
                continue
            offset = _range_start(handle, index * chunk_bytes, chunk_bytes, reader)
            if offset is not None and (offsets[-1] if offsets else low) < offset < high:
                offsets.append(offset)
                break
    return offsets


def _range_start(
    handle: BinaryIO, boundary: int, chunk_bytes: int, reader: TimestampReader
) -> int | None:
    """Start of the line straddling `boundary` if it is short and has a timestamp, else None."""
    before = min(MAX_LINE_BYTES, chunk_bytes)
    handle.seek(boundary - before)
    tail = handle.read(before)
    newline = tail.rfind(b"\n")
    if len(tail) < before or newline < 0:
        return None  # a line so long that the sequential scan would be cutting it
    start = boundary - before + newline + 1
    handle.seek(start)
    probe = handle.read(PROBE_BYTES)
    line_end = probe.find(b"\n")
    line = probe if line_end < 0 else probe[:line_end]
    return start if reader.read(line, flavor=False) is not None else None


# --- merging range scans ------------------------------------------------------------------------


def merge_scans(into: FileScan, later: FileScan) -> None:
    """Fold `later` (the scan of the range right after `into`'s) into `into`."""
    into.lines += later.lines
    into.timestamped += later.timestamped
    into.first = _earliest(into.first, later.first)
    into.last = _latest(into.last, later.last)
    if into.first_line is None:
        into.first_line = later.first_line
    into.flavors.update(later.flavors)
    into.undecodable += later.undecodable
    into.bad_stamps += later.bad_stamps
    if into.bad_stamp_line is None:
        into.bad_stamp_line = later.bad_stamp_line
    into.skipped_lines += later.skipped_lines
    into.skipped_events += later.skipped_events
    into.consumed = later.consumed
    into.reader.ambiguous_zones |= later.reader.ambiguous_zones
    for event, tally in later.tallies.items():
        if event in into.tallies:
            merge_tallies(into.tallies[event], tally)
        else:
            into.tallies[event] = tally


def merge_tallies(into: EventTally, later: EventTally) -> None:
    """Fold `later`'s occurrences (all after `into`'s) into `into`, examples as if one tally."""
    total = into.count + later.count
    head = into.first_examples
    if len(head) < FIRST_EXAMPLES:  # then `into` holds all its lines in first_examples
        head = (head + later.first_examples)[:FIRST_EXAMPLES]
    ends = (_last_known(into) + _last_known(later))[-LAST_EXAMPLES:]
    keep = min(LAST_EXAMPLES, max(0, total - FIRST_EXAMPLES))
    into.first_examples = head
    into.last_lines = deque(ends[len(ends) - keep :], maxlen=LAST_EXAMPLES)
    into.count = total
    into.first = _earliest(into.first, later.first)
    into.last = _latest(into.last, later.last)
    for minute, count in later.per_minute.items():
        if minute in into.per_minute or len(into.per_minute) < MAX_MINUTES_PER_EVENT:
            into.per_minute[minute] = into.per_minute.get(minute, 0) + count
        else:
            into.minutes_dropped = True
    into.minutes_dropped |= later.minutes_dropped


def _last_known(tally: EventTally) -> list[bytes | str]:
    """A tally's last min(LAST_EXAMPLES, count) lines, oldest first."""
    return [*tally.first_examples, *tally.last_lines][-LAST_EXAMPLES:]


def _earliest(one: datetime | None, other: datetime | None) -> datetime | None:
    if one is None or other is None:
        return other if one is None else one
    return min(one, other)


def _latest(one: datetime | None, other: datetime | None) -> datetime | None:
    if one is None or other is None:
        return other if one is None else one
    return max(one, other)
