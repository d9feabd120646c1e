"""Scan a large plain log file on several cores: one process per byte range, merged in order.

The ranges start where a whole-file scan starts a span (see log_split), so the merged result
equals that of one sequential scan. The calling process scans the first range itself.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, tzinfo
from multiprocessing.context import BaseContext
from typing import BinaryIO

from pooldoctor.collect.log_merge import merge_scans
from pooldoctor.collect.log_reader import CHUNK_BYTES, AlignedRange, LogStream
from pooldoctor.collect.log_scan import FileScan
from pooldoctor.collect.log_split import split_offsets
from pooldoctor.collect.timestamps import TimestampReader

# Below these a second process costs more to start than it saves: one process scans about
# 250 MiB/s; a forked one starts in milliseconds, a spawned one in about 0.3 s (it imports).
PARALLEL_MIN_BYTES = 32 * 1024 * 1024
SPAWN_MIN_BYTES = 256 * 1024 * 1024
MAX_PROCESSES = 8  # memory stays bounded: each process holds about two chunks


@dataclass
class RangeScan:
    """What scanning one byte range showed, and how its stream ended."""

    scan: FileScan
    long_lines: int = 0
    stop_reason: str | None = None


@dataclass(frozen=True)
class ScanSettings:
    """What every range scan of one file needs to know."""

    path: str
    log_tz: tzinfo
    reference: datetime
    since: datetime | None
    until: datetime | None
    chunk_bytes: int = CHUNK_BYTES


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
    parts: int | None = None,
    min_bytes: int | None = None,
) -> RangeScan | None:
    """The scan of the whole file, or None when it cannot be split (then scan it in one go).

    `parts` ranges (default: one per core) are scanned by parts - 1 processes and this one.
    """
    parts = process_count() if parts is None else parts
    context = _context()
    if min_bytes is None:
        forked = context.get_start_method() == "fork"
        min_bytes = PARALLEL_MIN_BYTES if forked else SPAWN_MIN_BYTES
    if parts < 2 or size < min_bytes:
        return None
    probe = TimestampReader(log_tz=settings.log_tz, reference=settings.reference)
    offsets = split_offsets(handle, size, parts, settings.chunk_bytes, probe)
    if not offsets:
        return None
    starts = [0, *offsets]
    ends: list[int | None] = [*offsets, None]  # the last range reads whatever the file holds
    ranges = list(zip(starts, ends, strict=True))
    with ProcessPoolExecutor(max_workers=len(ranges) - 1, mp_context=context) as pool:
        futures = [pool.submit(scan_range, settings, start, end) for start, end in ranges[1:]]
        results = [scan_range(settings, *ranges[0])]
        for future, (start, end) in zip(futures, ranges[1:], strict=True):
            results.append(_outcome(future, settings, start, end))
    merged = results[0]
    for later in results[1:]:
        if merged.stop_reason is not None:
            break  # a sequential scan would have stopped there too
        merge_scans(merged.scan, later.scan)
        merged.long_lines += later.long_lines
        merged.stop_reason = later.stop_reason
    return merged


def scan_range(settings: ScanSettings, start: int, end: int | None) -> RangeScan:
    """Scan bytes [start, end) of the file (end None: to its end) as a whole-file scan would."""
    reader = TimestampReader(log_tz=settings.log_tz, reference=settings.reference)
    scan = FileScan(reader, settings.since, settings.until, consumed=start)
    with open(settings.path, "rb") as handle:
        chunk = settings.chunk_bytes
        stream = LogStream(AlignedRange(handle, start, end, chunk), chunk, plain=True)
        for span in stream.spans():
            scan.scan(span)
    scan.drop_caches()
    return RangeScan(scan, stream.long_lines, stream.stop_reason)


def _outcome(
    future: Future[RangeScan], settings: ScanSettings, start: int, end: int | None
) -> RangeScan:
    try:
        return future.result()
    except Exception:  # the worker died, could not start or pickle: scan the range here
        return scan_range(settings, start, end)


def _context() -> BaseContext:
    # fork starts in milliseconds but is unsafe while other threads may hold locks
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")
