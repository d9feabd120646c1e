"""Find the bytes of a plain log file that hold a --since/--until window, by binary search.

A probe at any byte offset resynchronises on the next line that carries a timestamp. The lower
edge is the start of a timestamped line stamped earlier than `since - SEEK_MARGIN`, so a record
(a traceback, a multi-line statement) reaching into the window is read from its first line; the
upper edge is the start of a timestamped line stamped `until + SEEK_MARGIN` or later, so lines
written up to SEEK_MARGIN out of order on either side are still read. Every probe is kept: when
their stamps, in file order, go back in time by more than the margin, the file is not ordered
enough to bisect, and the caller scans it whole. ORDER_PROBES evenly spread probes add to them,
so disorder between far-apart parts is seen even where the bisection does not look.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO

from pooldoctor.collect.logs.timestamps import TimestampReader

# How far out of order lines may be and still be found: buffered writers from several processes,
# access-log lines stamped when a request began but written when it ended (any web timeout).
SEEK_MARGIN = timedelta(minutes=5)
# How far past a probe offset to look for a timestamped line before giving up on seeking.
RESYNC_BYTES = 4 * 1024 * 1024
READ_BYTES = 64 * 1024
# The search stops when the bracket is this narrow: scanning a few KiB beats another probe.
BRACKET_BYTES = 64 * 1024
MAX_PROBES = 200  # a 2**64-byte file needs 64; this bounds a misbehaving one
# Evenly spread probes that only check the order: files concatenated out of order (rotated logs
# joined the wrong way round) jump back in time somewhere the bisection alone may never look.
ORDER_PROBES = 16


@dataclass(frozen=True)
class Probe:
    """The first timestamped line at or after a probed offset."""

    line_start: int
    moment: datetime


@dataclass
class Window:
    """Bytes [start, end) to scan (end None: to the end of the file) and what finding them took."""

    start: int
    end: int | None
    probes: int = 0
    head: datetime | None = None  # the file's first and last timestamps, as the probes saw them
    tail: datetime | None = None


@dataclass
class _Prober:
    handle: BinaryIO
    size: int
    reader: TimestampReader
    seen: dict[int, Probe | None] = field(default_factory=dict)

    def at(self, offset: int) -> Probe | None:
        """The first timestamped line starting at `offset` (0) or after the newline past it."""
        if offset in self.seen:
            return self.seen[offset]
        if len(self.seen) >= MAX_PROBES:
            raise _Unseekable("too many probes")
        found = next(self.stamped_lines(offset, offset + RESYNC_BYTES), None)
        self.seen[offset] = found
        return found

    def stamped_lines(self, offset: int, stop: int) -> Iterator[Probe]:
        """Timestamped lines starting in [offset, stop), the first one after a newline unless
        offset is 0; lines are read whole even where they run past `stop`."""
        self.handle.seek(offset)
        position = offset
        pending = b""
        at_line_start = offset == 0
        while True:
            data = self.handle.read(READ_BYTES)
            buffer_start = position - len(pending)
            position += len(data)
            buffer = pending + data
            cursor = 0
            if not at_line_start:
                newline = buffer.find(b"\n")
                if newline < 0:
                    if not data:
                        return
                    pending = b""
                    continue
                cursor, at_line_start = newline + 1, True
            while cursor < len(buffer):
                if buffer_start + cursor >= stop:
                    return
                newline = buffer.find(b"\n", cursor)
                if newline < 0 and data:
                    break  # the line continues in the next read
                line_end = len(buffer) if newline < 0 else newline
                stamp = self.reader.read(buffer[cursor:line_end], flavor=False)
                if stamp is not None:
                    yield Probe(buffer_start + cursor, stamp.moment)
                cursor = line_end + 1
            if not data:
                return
            pending = buffer[cursor:]

    def last_line(self) -> Probe | None:
        """The last timestamped line, looking back at most RESYNC_BYTES from the end."""
        span = READ_BYTES
        while True:
            offset = max(0, self.size - span)
            last = None
            for last in self.stamped_lines(offset, self.size):  # noqa: B007
                pass
            if last is not None or offset == 0 or span >= RESYNC_BYTES:
                return last
            span *= 8


class _Unseekable(Exception):
    """The file cannot be bisected by time: no timestamps near a probe, or out of order."""


def _first_at_or_after(prober: _Prober, target: datetime, low: int) -> int | None:
    """Start of the first timestamped line stamped >= target, as far as bisection can tell.

    None when every line is earlier: nothing of the window is in the file past `low`.
    """
    lo, hi = low, prober.size
    lo_probe = prober.at(lo)
    if lo_probe is None:
        raise _Unseekable(f"no timestamp within {RESYNC_BYTES} bytes of offset {lo}")
    if lo_probe.moment >= target:
        return lo_probe.line_start
    while hi - lo > BRACKET_BYTES:
        middle = (lo + hi) // 2
        probe = prober.at(middle)
        if probe is None:
            if prober.size - middle > RESYNC_BYTES:
                raise _Unseekable(f"no timestamp within {RESYNC_BYTES} bytes of offset {middle}")
            hi = middle  # only untimestamped lines till the end
        elif probe.moment < target:
            lo = middle
        else:
            hi = middle
    # The bracket is narrow: walk its timestamped lines to the first one at the target.
    for probe in prober.stamped_lines(lo, prober.size):
        if probe.moment >= target:
            prober.seen.setdefault(probe.line_start, probe)
            return probe.line_start
        if probe.line_start > hi + RESYNC_BYTES:
            break
    return None


def _check_order(prober: _Prober) -> None:
    ordered = sorted((p.line_start, p.moment) for p in prober.seen.values() if p is not None)
    latest: datetime | None = None
    for _, moment in ordered:
        if latest is not None and moment < latest - SEEK_MARGIN:
            raise _Unseekable("timestamps go back in time by more than the seek margin")
        latest = moment if latest is None else max(latest, moment)


def find_window(
    handle: BinaryIO,
    size: int,
    reader: TimestampReader,
    since: datetime | None,
    until: datetime | None,
) -> Window | None:
    """The byte range holding [since, until) plus the margin, or None to scan the whole file."""
    if since is None and until is None:
        return None
    prober = _Prober(handle, size, reader)
    try:
        head = prober.at(0)
        tail = prober.last_line()
        if head is None or tail is None:
            return None
        prober.seen[tail.line_start] = tail
        for part in range(1, ORDER_PROBES):
            prober.at(size * part // ORDER_PROBES)
        start = 0
        if since is not None and since - SEEK_MARGIN > head.moment:
            found = _first_at_or_after(prober, since - SEEK_MARGIN, 0)
            start = size if found is None else found
        end = None
        if until is not None and until + SEEK_MARGIN <= tail.moment:
            end = _first_at_or_after(prober, until + SEEK_MARGIN, start)
        _check_order(prober)
    except _Unseekable:
        return None
    if end is not None and end < start:
        end = start
    return Window(start, end, len(prober.seen), head.moment, tail.moment)
