"""Choose where a large plain log file is split for parallel scans.

A range starts where a whole-file scan would start a span (the line that straddles a chunk
boundary, or the boundary itself) and only at a line with a timestamp, so no record, no
traceback and no span is cut differently than in one sequential scan.
"""

from __future__ import annotations

from typing import BinaryIO

from pooldoctor.collect.log_reader import MAX_LINE_BYTES
from pooldoctor.collect.timestamps import TimestampReader

PROBE_BYTES = 64 * 1024  # of a line's start, more than any timestamp reader looks at (4 KiB)
CANDIDATE_BOUNDARIES = 8  # chunk boundaries tried around each ideal split point


def split_offsets(
    handle: BinaryIO, size: int, parts: int, chunk_bytes: int, reader: TimestampReader
) -> list[int]:
    """Ascending offsets where ranges after the first start; fewer than parts - 1 if need be."""
    boundaries = (size - 1) // chunk_bytes  # chunk boundaries strictly inside the file
    offsets: list[int] = []
    for part in range(1, parts):
        ideal = round(size * part / parts / chunk_bytes) or 1  # nearest the even split
        for step in range(CANDIDATE_BOUNDARIES):
            index = ideal + (step + 1) // 2 * (1 if step % 2 else -1)
            if not 1 <= index <= boundaries:
                continue
            offset = _range_start(handle, index * chunk_bytes, chunk_bytes, reader)
            if offset is not None and offset > (offsets[-1] if offsets else 0):
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
